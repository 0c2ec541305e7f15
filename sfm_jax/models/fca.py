"""Frequency Consistent Adaptation (FCA; Ji et al., AAAI 2021) networks and losses.

The three networks of the CENG501 reproduction (CENG501-Projects/CENG501-Spring2022,
`Project_Cengiz/model.py`) with the student's widths, so parameter counts match: the adaptation
generator G (`AdaptationGenerator`, the student's `KernelEstimator`; 474,945 parameters), the
Frequency Density Comparator (`FrequencyDensityComparator`, 187,137) and the Wavelet Discriminator
(`WaveletDiscriminator`, 4,326,273). Images are NHWC floats in [0, 1]. Convs use PyTorch's
`padding="same"` (odd kernels: symmetric) except the strided ones, which are the student's
`Conv2dSame` = TF/Flax "SAME" (the extra pad row/column at the bottom/right). BatchNorm has
PyTorch's defaults; call `model.eval()` for running statistics. Where the paper and the reproduction
differ, each class docstring says which one is followed (summary: `docs/deviations.md`, "FCA
generator, comparator and losses"). """

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sfm_jax.models.layers import PLAIN, Compute, torch_default, torch_flatten
from sfm_jax.models.registry import register
from sfm_jax.ops import blur, haar_dwt, imresize
from sfm_jax.ops._checks import check_batch, check_multiple_of

_HIGHEST = jax.lax.Precision.HIGHEST
KERNEL_MODES = ("convolve", "multiply")


def conv_same(in_features: int, out_features: int, kernel: tuple[int, int], *,
              rngs: nnx.Rngs, compute: Compute = PLAIN) -> nnx.Conv:
  """PyTorch `Conv2d(..., kernel_size=(kh, kw), padding="same")` for odd kh, kw (stride 1)."""
  kh, kw = kernel
  return compute.nnx_conv(in_features, out_features, (kh, kw), rngs=rngs,
                          padding=((kh // 2, kh // 2), (kw // 2, kw // 2)),
                          kernel_init=torch_default)


def conv_tf_same(in_features: int, out_features: int, kernel: int, stride: int, *,
                 rngs: nnx.Rngs, compute: Compute = PLAIN) -> nnx.Conv:
  """The student's `Conv2dSame` (TF SAME: pad max((⌈i/s⌉−1)s + k − i, 0), extra at the end);
  lax's convolution whatever `compute.conv_general_dilated`, in `compute.dtype`."""
  return nnx.Conv(in_features, out_features, (kernel, kernel), (stride, stride), padding="SAME",
                  kernel_init=torch_default, rngs=rngs, dtype=compute.dtype)


@functools.lru_cache(maxsize=64)
def adaptive_pool_matrix(in_len: int, out_len: int) -> np.ndarray:
  """PyTorch `adaptive_avg_pool` along one axis as an (out_len, in_len) averaging matrix.

  Bin i averages inputs [⌊i·in/out⌋, ⌈(i+1)·in/out⌉); bins overlap when out_len > in_len.
  """
  matrix = np.zeros((out_len, in_len), np.float32)
  for i in range(out_len):
    start, end = (i * in_len) // out_len, -((-(i + 1) * in_len) // out_len)
    matrix[i, start:end] = 1.0 / (end - start)
  return matrix


# --- Adaptation generator (`KernelEstimator` in model.py) -----------------------------------------


class ResidualDsBlock(nnx.Module):
  """The student's "Residual Ds Block" (an RDB guess; the paper does not define it), nf channels.

  b_i = ReLU(conv3×3_i(p_{i−1})), p_0 = x, p_i = p_{i−1} + b_i (i = 1…4), b_5 from p_4;
  out = x + conv1×1(concat[x, b1, …, b5]). `faithful_bug=True` reproduces the student's code,
  which adds b2 instead of b3 and b4 to the running sum; the default (False) is the evident
  intent. Both have the same parameters (5·(9nf² + nf) + 6nf² + nf).
  """

  def __init__(self, nf: int = 64, faithful_bug: bool = False, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    self.faithful_bug = faithful_bug
    self.convs = nnx.List([compute.conv(nf, nf, 3, rngs=rngs) for _ in range(5)])
    self.fuse = compute.conv(6 * nf, nf, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    feats, running = [x], x
    for i, layer in enumerate(self.convs):
      feats.append(nnx.relu(layer(running)))
      if i < 4:
        running = running + (feats[2] if self.faithful_bug and i >= 2 else feats[-1])
    return x + self.fuse(jnp.concatenate(feats, axis=-1))


class ResidualBlock(nnx.Module):
  """Two residual units x + conv3×3(ReLU(conv3×3(x))), nf channels (the student's guess)."""

  def __init__(self, nf: int = 64, units: int = 2, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    self.convs = nnx.List([compute.conv(nf, nf, 3, rngs=rngs) for _ in range(2 * units)])

  def __call__(self, x: jax.Array) -> jax.Array:
    for first, second in zip(self.convs[0::2], self.convs[1::2], strict=True):
      x = x + second(nnx.relu(first(x)))
    return x


@register("fca_generator", role="domain_adapter", protocol="fca", scale=1, size_multiple=16,
          global_context=True)
class AdaptationGenerator(nnx.Module):
  """FCA's adaptation generator G: x (B, H, W, C) in [0, 1] -> G(x) (B, H/4, W/4, C).

  Body (the student's `KernelEstimator`): convs 1×3, 3×1, 3×3 (C -> nf each) -> concat ->
  conv3×3 stride 2 (TF SAME) -> one ResidualDsBlock -> one ResidualBlock -> max-pool 2 ->
  conv1×1 -> ReLU -> conv1×1 (nf -> 1) = the kernel map (B, H/4, W/4, 1). 474,945 parameters with
  the defaults, whatever `kernel_mode` (the paper has 48 concat channels, 5 RDS blocks and 2
  residual blocks; the student's 192 / 1 / 1 are kept).

  How the map degrades x (the paper and the student differ) is `kernel_mode`:
  - "convolve" (default; the paper's figure: an estimated blur kernel ⊗ the bicubic-downsampled
    image): the map is average-pooled (PyTorch adaptive pooling) to kernel_size² logits and a
    softmax over them gives one non-negative, sum-1 kernel per image (`kernels`); the image
    downsampled by 1/scale is convolved with it per image and channel, reflect borders.
  - "multiply" (the student's code): bicubic_down(x, 1/4) · map, element-wise and broadcast over
    channels (no normalisation: the "kernel" may be negative). Needs scale = 4.
  The bicubic is MATLAB's antialiased `imresize` (Keys a = −0.5, kernel stretched by the factor);
  the student's `F.interpolate(..., 'bicubic', antialias=True)` uses the same kernel but
  truncates it at the borders instead of mirroring: outputs are identical except in the outer
  ~2 LR pixels (differences up to ~0.03 on random data).

  Args:
    channels: image channels C.
    nf: feature width (64).
    kernel_mode: "convolve" or "multiply" (see above).
    kernel_size: odd size k of the estimated kernel ("convolve"; the README's Gaussians are 13).
    scale: downscaling factor of the bicubic step (the map is always H/4 × W/4).
    faithful_rds_bug: reproduce the student's ResidualDsBlock summation bug (see there).
  """

  def __init__(self, channels: int = 3, nf: int = 64, kernel_mode: str = "convolve",
               kernel_size: int = 13, scale: int = 4, faithful_rds_bug: bool = False, *,
               rngs: nnx.Rngs, compute: Compute = PLAIN):
    if kernel_mode not in KERNEL_MODES:
      raise ValueError(f"kernel_mode={kernel_mode!r}; use one of {KERNEL_MODES}.")
    if kernel_size < 1 or kernel_size % 2 == 0:
      raise ValueError(f"kernel_size={kernel_size} must be odd and positive, e.g. 13.")
    if kernel_mode == "multiply" and scale != 4:
      raise ValueError(f"kernel_mode='multiply' multiplies by the H/4 × W/4 kernel map; scale="
                       f"{scale} must be 4 (or use kernel_mode='convolve').")
    if int(scale) != scale or scale < 1:
      raise ValueError(f"scale={scale} must be a positive integer, e.g. 4.")
    self.kernel_mode, self.kernel_size, self.scale = kernel_mode, kernel_size, int(scale)
    self.branches = nnx.List([conv_same(channels, nf, k, rngs=rngs, compute=compute)
                              for k in ((1, 3), (3, 1), (3, 3))])
    self.down = conv_tf_same(3 * nf, nf, 3, 2, rngs=rngs, compute=compute)
    self.rds_block = ResidualDsBlock(nf, faithful_rds_bug, rngs=rngs, compute=compute)
    self.res_block = ResidualBlock(nf, rngs=rngs, compute=compute)
    self.head = nnx.List([compute.conv(nf, nf, 1, rngs=rngs),
                          compute.conv(nf, 1, 1, rngs=rngs)])

  def kernel_map(self, x: jax.Array) -> jax.Array:
    """The network's output map (B, ⌊⌈H/2⌉/2⌋, ⌊⌈W/2⌉/2⌋, 1), i.e. (B, H/4, W/4, 1) for H, W
    multiples of 4 (unbounded: it is no kernel by itself)."""
    check_batch(x, "x")
    f = jnp.concatenate([branch(x) for branch in self.branches], axis=-1)
    f = self.res_block(self.rds_block(self.down(f)))
    f = nnx.max_pool(f, (2, 2), strides=(2, 2))
    return self.head[1](nnx.relu(self.head[0](f)))

  def kernels_from_map(self, kernel_map: jax.Array) -> jax.Array:
    """(B, h, w, 1) map -> (B, k, k) kernels: adaptive average pool to k×k, softmax over k²."""
    k = self.kernel_size
    ph = jnp.asarray(adaptive_pool_matrix(kernel_map.shape[1], k))
    pw = jnp.asarray(adaptive_pool_matrix(kernel_map.shape[2], k))
    logits = jnp.einsum("ih,bhw,jw->bij", ph, kernel_map[..., 0], pw, precision=_HIGHEST)
    return nnx.softmax(logits.reshape(-1, k * k), axis=-1).reshape(-1, k, k)

  def kernels(self, x: jax.Array) -> jax.Array:
    """Estimated blur kernels (B, k, k), non-negative and summing to 1 ("convolve" mode only)."""
    if self.kernel_mode != "convolve":
      raise ValueError("kernels() is defined for kernel_mode='convolve'; in 'multiply' mode "
                       "inspect kernel_map(x) instead.")
    return self.kernels_from_map(self.kernel_map(x))

  def __call__(self, x: jax.Array) -> jax.Array:
    check_batch(x, "x")
    factor = 4 if self.kernel_mode == "multiply" else self.scale
    check_multiple_of(x.shape[1], factor, "height")
    check_multiple_of(x.shape[2], factor, "width")
    down = imresize(x, 1.0 / factor)
    kernel_map = self.kernel_map(x)
    if self.kernel_mode == "multiply":
      return down * kernel_map
    return blur(down, self.kernels_from_map(kernel_map), padding="reflect")


# --- Frequency Density Comparator (`FreqDensityComparator` in model.py) ---------------------------


@register("fca_fdc", role="critic", global_context=True)
class FrequencyDensityComparator(nnx.Module):
  """FDC(x, y) = E(x) − E(y): (B, H, W, C) pairs -> (B, H/8, W/8, 1) (16×16 for 128² patches).

  Encoder E (the student's `FreqDensityComparator`): three (1, 3) convs C -> nf -> concat ->
  3 × [conv3×3 stride 2 (TF SAME) -> BN -> ReLU] -> conv3×3 nf -> 1. One BatchNorm module is
  shared by the three BN positions, as in the student's code (so 187,137 parameters with the
  defaults); its running statistics are updated at every use. ReLU is the student's (the paper's
  figure draws LeakyReLU). E(x) and E(y) are separate passes, so in training mode each uses its
  own batch statistics, as in PyTorch.

  Args:
    channels: image channels C.
    nf: feature width (64).
    reuse_branch2: reproduce the student's bug: concat[b1(x), b2(x), b2(x)], the third branch
      built but unused. Default False uses all three branches; the parameters are the same.
  """

  def __init__(self, channels: int = 3, nf: int = 64, reuse_branch2: bool = False, *,
               rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.reuse_branch2 = reuse_branch2
    self.branches = nnx.List([conv_same(channels, nf, (1, 3), rngs=rngs, compute=compute)
                              for _ in range(3)])
    self.downs = nnx.List([conv_tf_same(3 * nf if i == 0 else nf, nf, 3, 2, rngs=rngs,
                                        compute=compute)
                           for i in range(3)])
    self.bn = compute.batch_norm(nf, rngs=rngs)
    self.out = compute.conv(nf, 1, 3, rngs=rngs)

  def encode(self, x: jax.Array) -> jax.Array:
    """E(x): (B, H, W, C) -> (B, ⌈H/8⌉, ⌈W/8⌉, 1)."""
    check_batch(x, "x")
    branches = [self.branches[i] for i in ((0, 1, 1) if self.reuse_branch2 else (0, 1, 2))]
    f = jnp.concatenate([branch(x) for branch in branches], axis=-1)
    for layer in self.downs:
      f = nnx.relu(self.bn(layer(f)))
    return self.out(f)

  def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
    return self.encode(x) - self.encode(y)


# --- Wavelet Discriminator (`WaveletDiscriminator` in model.py) -----------------------------------


def wavelet_high_bands(x: jax.Array) -> jax.Array:
  """(B, H, W, C) -> (B, H/2, W/2, 3C): [LH, HL, HH]·0.5 + 0.5, band-major channels.

  `haar_dwt`'s LH, HL, HH equal `pytorch_wavelets.DWTForward(J=1, wave='haar')`'s yh[0][:, :, 0],
  [:, :, 1], [:, :, 2] in value, sign and order (checked numerically): LH = (a+b−c−d)/2 (low-pass
  along the width, high-pass along the height), HL = (a−b+c−d)/2, HH = (a−b−c+d)/2 for each 2×2
  tile [[a, b], [c, d]]. The channel order is DASR's `cat((LH, HL, HH), 1)`.
  """
  bands = haar_dwt(x)[1:]
  return jnp.concatenate(list(bands * 0.5 + 0.5), axis=-1)


@register("fca_wavelet_d", role="critic", global_context=True)
class WaveletDiscriminator(nnx.Module):
  """WD(x, y) = D(x) − D(y) for (B, 128, 128, C) images in [0, 1]; D = `score`, (B,).

  D (the student's `WaveletDiscriminator`, from DASR / LSGAN): Haar high bands (3C channels,
  64×64) -> 4 × [conv5×5 stride 2 (TF SAME) -> BN -> LeakyReLU(0.02)], widths nf, 2nf, 4nf, 8nf
  -> flatten in PyTorch's NCHW order -> Linear(8nf·4·4 -> 1). 4,326,273 parameters with the
  defaults. The input must be 128×128 (the linear layer's width depends on it).
  """

  size = 128

  def __init__(self, channels: int = 3, nf: int = 64, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    widths = [3 * channels, nf, 2 * nf, 4 * nf, 8 * nf]
    self.convs = nnx.List([conv_tf_same(a, b, 5, 2, rngs=rngs, compute=compute)
                           for a, b in zip(widths[:-1], widths[1:], strict=True)])
    self.bns = nnx.List([compute.batch_norm(b, rngs=rngs) for b in widths[1:]])
    side = self.size // 32
    self.fc = nnx.Linear(8 * nf * side * side, 1, kernel_init=torch_default, rngs=rngs)

  def score(self, x: jax.Array) -> jax.Array:
    """D(x): (B, 128, 128, C) -> (B,)."""
    check_batch(x, "x")
    if x.shape[1:3] != (self.size, self.size):
      raise ValueError(f"x has spatial size {x.shape[1:3]}; the wavelet discriminator takes "
                       f"{self.size}×{self.size} patches (crop or resize first).")
    f = wavelet_high_bands(x)
    for layer, bn in zip(self.convs, self.bns, strict=True):
      f = nnx.leaky_relu(bn(layer(f)), 0.02)
    return self.fc(torch_flatten(f))[:, 0]

  def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
    return self.score(x) - self.score(y)


# --- Losses (the reproduction's train.py) ---------------------------------------------------------


def fdc_loss(fdc: FrequencyDensityComparator, generated: jax.Array, patch: jax.Array,
             down: jax.Array, up: jax.Array) -> jax.Array:
  """The student's L_FDC = mean(|C(x', G)−1| + |C(x^D, G)−1| + |C(x^U, G)−1|), a scalar.

  generated = G(x) and the random 128² crops patch = x', down = x^D, up = x^U, all (B, H, W, C).
  All three targets are 1, as in the student's code (the paper's public text does not give them).
  """
  terms = [jnp.abs(fdc(other, generated) - 1.0) for other in (patch, down, up)]
  return jnp.mean(terms[0] + terms[1] + terms[2])


def wavelet_loss(wd: WaveletDiscriminator, real: jax.Array, generated: jax.Array) -> jax.Array:
  """The student's L_WD = mean((D(real) − D(generated) − 1)²) (LSGAN-style target 1), a scalar."""
  return jnp.mean((wd(real, generated) - 1.0) ** 2)

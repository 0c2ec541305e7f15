"""GAN discriminators and the VGG-19 perceptual feature extractor.

* `VGGDiscriminator`: ESRGAN's `Discriminator_VGG_128` as used by SFM's SR code
  (majedelhelou/SFM `SR/model/GAN.py`).
* `NatSRDiscriminator`: NatSR's spectrally normalised RaGAN discriminator `DIS` (JWSoh/NatSR
  `model.py`), built from `SNConv` (TF `SNconv` semantics: one power iteration per call).
* `NMD`: NatSR's Natural Manifold Discriminator `CLASSIFIER` (JWSoh/NatSR `Train_NMD/model.py`).
* `VGG19Features` + `perceptual_l1`: torchvision `vgg19().features[:35]` and ESRGAN's
  `L1(vgg(hr), vgg(out))` (SFM `SR/model/vgg_feature_extractor.py`, `SR/train.py`).

All take NHWC images in [0, 1] and return logits of shape (B,) (the features: (B, H/16, W/16, 512)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from sfm_jax.models.layers import PLAIN, Compute, lrelu, torch_default, torch_flatten
from sfm_jax.models.registry import register

# TF `variance_scaling_initializer()`: factor 2, fan_in, truncated normal (σ ≈ √(1.3·2/fan_in)).
tf_he = nnx.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")
# TF Xavier/Glorot uniform (NatSR's convs without an activation).
tf_glorot = nnx.initializers.glorot_uniform()


# --- ESRGAN Discriminator_VGG_128 ---------------------------------------------------------------


@register("vgg_discriminator", role="critic", global_context=True)
class VGGDiscriminator(nnx.Module):
  """ESRGAN's `Discriminator_VGG_128(in_nc=channels, nf=nf)`: 14,498,249 parameters for
  channels = 1, nf = 64 (SFM's gray ESRGAN).

  conv0_0 (3×3, bias) → LReLU; then conv{k}_0 (3×3 s1 p1) and conv{k}_1 (4×4 s2 p1), both without
  bias and each followed by BatchNorm (PyTorch defaults) and LReLU(0.2), widths nf, 2nf, 4nf, 8nf,
  8nf for k = 0..4 (conv0_0/conv0_1 both nf); flatten in PyTorch's NCHW order (8nf·4·4) →
  linear1 (→ 100) → LReLU → linear2 (→ 1). Attribute names equal the PyTorch module names, so
  converted state_dicts map one to one (BatchNorm uses batch statistics until `model.eval()`).

  Call: model(x (B, 128, 128, channels) in [0, 1]) -> logits (B,).
  """

  size = 128

  def __init__(self, channels: int = 1, nf: int = 64, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    widths = [nf, nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf]
    self.conv0_0 = compute.conv(channels, nf, 3, rngs=rngs)
    for k in range(5):
      self._stage(k, widths[k], widths[k + 1], rngs, compute)
    self.linear1 = nnx.Linear(8 * nf * 4 * 4, 100, kernel_init=torch_default, rngs=rngs)
    self.linear2 = nnx.Linear(100, 1, kernel_init=torch_default, rngs=rngs)

  def _stage(self, k: int, in_features: int, out_features: int, rngs: nnx.Rngs,
             compute: Compute):
    """conv{k}_0/bn{k}_0 (3×3 s1; absent for k = 0) and conv{k}_1/bn{k}_1 (4×4 s2 p1)."""
    if k > 0:
      setattr(self, f"conv{k}_0", compute.conv(in_features, out_features, 3, use_bias=False,
                                               rngs=rngs))
      setattr(self, f"bn{k}_0", compute.batch_norm(out_features, rngs=rngs))
    setattr(self, f"conv{k}_1", compute.conv(out_features, out_features, 4, stride=2,
                                             padding=1, use_bias=False, rngs=rngs))
    setattr(self, f"bn{k}_1", compute.batch_norm(out_features, rngs=rngs))

  def __call__(self, x: jax.Array) -> jax.Array:
    if x.shape[1:3] != (self.size, self.size):
      raise ValueError(f"VGGDiscriminator needs 128×128 inputs (its linear1 expects 8nf·4·4 "
                       f"features), got {x.shape[1]}×{x.shape[2]}; crop or resize the HR "
                       "patches to 128×128 (e.g. gt_size / patch size 128).")
    x = lrelu(self.conv0_0(x))
    for k in range(5):
      names = ("0", "1") if k > 0 else ("1",)
      for j in names:
        x = lrelu(getattr(self, f"bn{k}_{j}")(getattr(self, f"conv{k}_{j}")(x)))
    return self.linear2(lrelu(self.linear1(torch_flatten(x))))[:, 0]


# --- NatSR spectral-normalised discriminator ----------------------------------------------------


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """TF `tf.nn.l2_normalize`: x / √max(Σx², eps)."""
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x), eps))


class SNConv(nnx.Module):
  """NatSR's `SNconv`: a TF-`SAME` conv whose kernel is divided by its spectral norm.

  W (kh, kw, in, out) is read as a [kh·kw·in, out] matrix; `u` (1, out) is a persistent
  non-trainable `nnx.BatchStat` (saved with the model, never optimised), initialised from a
  unit truncated normal (unnormalised). Each call does one power iteration
  v = l2n(u Wᵀ), u' = l2n(v W), σ = v W u'ᵀ and convolves with W/σ. In training mode
  (`use_running_average=False`, set by `model.train()`, the default) u ← u'; after `model.eval()`
  the same iteration runs from the stored u, which is left unchanged. u' and v are constants for
  the gradient (as in Miyato et al. and `nnx.SpectralNorm`).

  The convolution computes in `compute.dtype` (the power iteration in float32) and is always
  lax's, whatever `compute.conv_general_dilated`.
  """

  def __init__(self, in_features: int, out_features: int, kernel: int = 3, stride: int = 1, *,
               rngs: nnx.Rngs, kernel_init=tf_he, use_running_average: bool = False,
               compute: Compute = PLAIN):
    self.stride = stride
    self.kernel = nnx.Param(kernel_init(rngs.params(), (kernel, kernel, in_features,
                                                        out_features)))
    self.bias = nnx.Param(jnp.zeros((out_features,)))
    self.u = nnx.BatchStat(jax.random.truncated_normal(rngs.params(), -2.0, 2.0,
                                                       (1, out_features)))
    self.use_running_average = use_running_average
    self.dtype = compute.dtype  # the convolution's dtype (None: the input's and the kernel's)

  def normalized_kernel(self) -> jax.Array:
    """W/σ after one power iteration; stores the new u in training mode."""
    kernel = self.kernel[...]
    w = kernel.reshape(-1, kernel.shape[-1])
    v = jax.lax.stop_gradient(l2_normalize(self.u[...] @ w.T))
    u = jax.lax.stop_gradient(l2_normalize(v @ w))
    sigma = (v @ w @ u.T)[0, 0]
    if not self.use_running_average:
      self.u[...] = u
    return kernel / sigma

  def __call__(self, x: jax.Array) -> jax.Array:
    x, kernel, bias = nnx.nn.dtypes.promote_dtype((x, self.normalized_kernel(), self.bias[...]),
                                                   dtype=self.dtype)
    y = jax.lax.conv_general_dilated(x, kernel, (self.stride, self.stride), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


@register("natsr_discriminator", role="critic", global_context=True)
class NatSRDiscriminator(nnx.Module):
  """NatSR's RaGAN discriminator `DIS`: 18,852,417 parameters for channels = 3, nf = 64 with the
  current wiring (plus one u vector per conv, which are BatchStats, not Params).

  Ten `SNConv` 3×3 layers conv1_1..conv5_2 (`convs[2(i−1) + (j−1)]` = conv{i}_{j}), widths nf, 2nf,
  4nf, 8nf, 16nf, stride 1 then 2 within each pair, LReLU(0.2) after each; `conv6_1` (→ 1, no
  activation); logits = spatial mean of conv6_1. TF `SAME` padding (stride 2 pads bottom/right).

  wiring="current" (the repository after PR #6, commit 825946d): conv5_2 feeds conv6_1.
  wiring="released" (the code before that PR, i.e. what the authors most likely trained the
  released NatSR with): conv4_2 feeds conv6_1 (in = 8nf, 18,847,809 parameters), conv5_1/conv5_2
  exist but are never called (no gradient, their u never updates).

  Call: model(x (B, H, W, channels) in [0, 1]) -> logits (B,); any H, W ≥ 32 (the five stride-2
  convs of the current wiring take 32 to 1×1; SAME padding ceils, so no size is rejected).
  """

  def __init__(self, channels: int = 3, nf: int = 64, wiring: str = "current", *,
               rngs: nnx.Rngs, compute: Compute = PLAIN):
    if wiring not in ("current", "released"):
      raise ValueError(f"wiring must be 'current' (conv5_2 -> conv6_1) or 'released' "
                       f"(conv4_2 -> conv6_1), got {wiring!r}.")
    self.wiring = wiring
    widths = [channels] + [w for m in (1, 2, 4, 8, 16) for w in (nf * m, nf * m)]
    self.convs = nnx.List([SNConv(widths[i], widths[i + 1], 3, 1 + i % 2, rngs=rngs,
                                  compute=compute)
                           for i in range(10)])
    head_in = widths[10] if wiring == "current" else widths[8]
    self.conv6_1 = SNConv(head_in, 1, 3, rngs=rngs, kernel_init=tf_glorot, compute=compute)

  def __call__(self, x: jax.Array) -> jax.Array:
    used = self.convs if self.wiring == "current" else self.convs[:8]
    for layer in used:
      x = lrelu(layer(x))
    return jnp.mean(self.conv6_1(x), axis=(1, 2, 3))


# --- NatSR Natural Manifold Discriminator -------------------------------------------------------


def _max_pool2(x: jax.Array) -> jax.Array:
  return nnx.max_pool(x, (2, 2), (2, 2))


@register("nmd", role="critic", global_context=True)
class NMD(nnx.Module):
  """NatSR's Natural Manifold Discriminator `CLASSIFIER`: 4,689,985 parameters (channels = 3,
  nf = 64). No BN, no SN.

  Four pairs of 3×3 SAME convs with bias + ReLU (widths nf, 2nf, 4nf, 8nf; `convs[2(i−1) +
  (j−1)]` = conv{i}_{j}), each pair followed by a 2×2 stride-2 max-pool, then `conv5_1` (→ 1, no
  activation); logits = spatial mean. sigmoid(logit) is P(natural): label 1 = natural HR,
  0 = noisy / blurry. Init (only for training from scratch): TF He truncated normal, Glorot
  uniform for conv5_1, zero biases (as NatSR's FRSR).

  Call: model(x (B, H, W, channels) in [0, 1], H and W multiples of 16) -> logits (B,).
  """

  def __init__(self, channels: int = 3, nf: int = 64, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    widths = [channels] + [w for m in (1, 2, 4, 8) for w in (nf * m, nf * m)]
    self.convs = nnx.List([compute.conv(widths[i], widths[i + 1], 3, kernel_init=tf_he,
                                        rngs=rngs)
                           for i in range(8)])
    self.conv5_1 = compute.conv(widths[8], 1, 3, kernel_init=tf_glorot, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    if x.shape[1] % 16 or x.shape[2] % 16:
      raise ValueError(f"NMD needs H and W that are multiples of 16 (four 2×2 max-pools), got "
                       f"{x.shape[1]}×{x.shape[2]}; crop the images to a multiple of 16 first.")
    for i, layer in enumerate(self.convs):
      x = nnx.relu(layer(x))
      if i % 2:
        x = _max_pool2(x)
    return jnp.mean(self.conv5_1(x), axis=(1, 2, 3))


# --- VGG-19 perceptual features -----------------------------------------------------------------

# torchvision `vgg19().features` indices of the 16 convs; max-pools follow convs 1, 3, 7 and 11.
VGG19_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
_VGG19_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)
_VGG19_POOL_AFTER = (1, 3, 7, 11)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@register("vgg19_features", role="feature_extractor", channels=3)
class VGG19Features(nnx.Module):
  """torchvision `vgg19().features[:35]`: conv1_1 … conv5_4, 3×3 pad-1 convs with ReLU between
  them and 2×2 max-pools at torchvision's places, ending at conv5_4 **before** its ReLU
  (20,024,384 parameters). ESRGAN's perceptual-loss network (SFM
  `SR/model/vgg_feature_extractor.py`).

  Weights: only from a converted torchvision file (`python -m sfm_jax.convert vgg19.pth --arch
  vgg19_features`, which drops the `classifier.*` keys); the random init is a placeholder. The
  weights are meant to stay frozen: never hand them to an optimiser.

  Call: model(x (B, H, W, C) in [0, 1], C = 1 or 3) -> (B, H/16, W/16, 512). The input is
  normalised as `(x − mean)/std` with ImageNet statistics; a gray image broadcasts to 3 channels
  exactly as the original's broadcast does. Odd sizes are floored by the pools, as in PyTorch.
  """

  def __init__(self, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    widths = (3, *_VGG19_WIDTHS)
    self.convs = nnx.List([compute.conv(widths[i], widths[i + 1], 3, rngs=rngs)
                           for i in range(16)])

  def __call__(self, x: jax.Array) -> jax.Array:
    if x.shape[-1] not in (1, 3):
      raise ValueError(f"VGG19Features takes 1- or 3-channel images, got {x.shape[-1]} "
                       "channels; convert the images to gray or RGB first.")
    x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
    for i, layer in enumerate(self.convs):
      x = layer(x)
      if i < len(self.convs) - 1:
        x = nnx.relu(x)
      if i in _VGG19_POOL_AFTER:
        x = _max_pool2(x)
    return x


def perceptual_l1(features: VGG19Features, output: jax.Array, target: jax.Array) -> jax.Array:
  """ESRGAN's perceptual loss `L1(vgg(hr), vgg(out))`: mean |vgg(target) − vgg(output)|, a scalar.

  output, target: (B, H, W, C) in [0, 1]; the target features carry no gradient.
  """
  want = jax.lax.stop_gradient(features(target))
  return jnp.mean(jnp.abs(want - features(output)))

"""IKC (Gu et al. 2019) as in SFM's `SR/IKC/models/modules/sftmd_arch.py`: the SFTMD super-resolver
conditioned on a PCA kernel code, the kernel Predictor and the iterative Corrector."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from sfm_jax.models.layers import PLAIN, Compute, lrelu
from sfm_jax.models.registry import register
from sfm_jax.models.sr import ConvShuffleUpsampler


def _code_map(code: jax.Array, like: jax.Array) -> jax.Array:
  """(B, L) kernel code stretched over the spatial size of `like` (B, H, W, ·)."""
  b, h, w = like.shape[:3]
  return jnp.broadcast_to(code[:, None, None, :], (b, h, w, code.shape[-1]))


class SFTLayer(nnx.Module):
  """fea · sigmoid(mul(cat)) + add(cat), with cat = [fea, code map]; mul/add = conv-LReLU-conv."""

  def __init__(self, nf: int, code_len: int, hidden: int = 32, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    self.mul = nnx.List([compute.conv(nf + code_len, hidden, 3, rngs=rngs),
                         compute.conv(hidden, nf, 3, rngs=rngs)])
    self.add = nnx.List([compute.conv(nf + code_len, hidden, 3, rngs=rngs),
                         compute.conv(hidden, nf, 3, rngs=rngs)])

  def __call__(self, fea: jax.Array, code_map: jax.Array) -> jax.Array:
    cat = jnp.concatenate([fea, code_map], axis=-1)
    mul = nnx.sigmoid(self.mul[1](lrelu(self.mul[0](cat))))
    add = self.add[1](lrelu(self.add[0](cat)))
    return fea * mul + add


class SFTResidualBlock(nnx.Module):
  def __init__(self, nf: int, code_len: int, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.sft1 = SFTLayer(nf, code_len, rngs=rngs, compute=compute)
    self.sft2 = SFTLayer(nf, code_len, rngs=rngs, compute=compute)
    self.conv1 = compute.conv(nf, nf, 3, rngs=rngs)
    self.conv2 = compute.conv(nf, nf, 3, rngs=rngs)

  def __call__(self, fea: jax.Array, code_map: jax.Array) -> jax.Array:
    f = nnx.relu(self.sft1(fea, code_map))
    f = nnx.relu(self.sft2(self.conv1(f), code_map))
    return fea + self.conv2(f)


@register("sftmd", role="super_resolver", protocol="ikc", takes_kernel_code=True,
          receptive_field=lambda a: 9 + 6 * a["blocks"])
class SFTMD(nnx.Module):
  """SFTMD (RGB ×4, 16 SFT residual blocks, code length 10): 4,234,691 parameters, i.e. the
  original's 7,966,147 less its unused `sft_branch`. Output clamped to [0, 1] as the original.

  Call: model(lr (B, h, w, 3), code (B, 10)) -> (B, 4h, 4w, 3).
  """

  def __init__(self, channels: int = 3, scale: int = 4, nf: int = 64, blocks: int = 16,
               code_len: int = 10, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.conv1 = compute.conv(channels, nf, 3, rngs=rngs)
    self.conv2 = compute.conv(nf, nf, 3, rngs=rngs)
    self.conv3 = compute.conv(nf, nf, 3, rngs=rngs)
    self.blocks = nnx.List([SFTResidualBlock(nf, code_len, rngs=rngs, compute=compute)
                            for _ in range(blocks)])
    self.sft = SFTLayer(nf, code_len, rngs=rngs, compute=compute)
    self.conv_mid = compute.conv(nf, nf, 3, rngs=rngs)
    self.upsampler = ConvShuffleUpsampler(scale, nf, rngs=rngs, activation=lrelu,
                                          compute=compute)
    self.conv_output = compute.conv(nf, channels, 9, rngs=rngs)

  def __call__(self, lr: jax.Array, code: jax.Array) -> jax.Array:
    code_map = _code_map(code, lr)
    fea_before = self.conv3(lrelu(self.conv2(lrelu(self.conv1(lr)))))
    fea = fea_before
    for block in self.blocks:
      fea = block(fea, code_map)
    fea = self.conv_mid(self.sft(fea + fea_before, code_map))
    return jnp.clip(self.conv_output(self.upsampler(fea)), 0.0, 1.0)


@register("ikc_predictor", role="kernel_estimator", protocol="ikc", global_context=True)
class Predictor(nnx.Module):
  """Kernel-code predictor: six 5×5 convs (strides 1,1,1,2,1,1), LeakyReLU after each (the
  last too), global average pool -> (B, code_len). 430,730 parameters."""

  def __init__(self, channels: int = 3, nf: int = 64, code_len: int = 10, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    widths = [channels, nf, nf, nf, nf, nf, code_len]
    strides = [1, 1, 1, 2, 1, 1]
    self.convs = nnx.List([compute.conv(a, b, 5, stride=s, rngs=rngs)
                           for a, b, s in zip(widths[:-1], widths[1:], strides, strict=True)])

  def __call__(self, lr: jax.Array) -> jax.Array:
    x = lr
    for layer in self.convs:
      x = lrelu(layer(x))
    return jnp.mean(x, axis=(1, 2))


@register("ikc_corrector", role="kernel_estimator", protocol="ikc", takes_kernel_code=True,
          global_context=True)
class Corrector(nnx.Module):
  """Kernel-code corrector: features of the SR image (seven 5×5 convs, strides
  1,2,1,2,1,1,1) and of the code (two dense layers), fused by 1×1 convs, pooled to a correction
  Δ; returns code + Δ. 649,930 parameters."""

  def __init__(self, channels: int = 3, nf: int = 64, code_len: int = 10, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    strides = [1, 2, 1, 2, 1, 1, 1]
    self.convs = nnx.List([compute.conv(channels if i == 0 else nf, nf, 5, stride=s, rngs=rngs)
                           for i, s in enumerate(strides)])
    self.code_dense = nnx.List([nnx.Linear(code_len, nf, rngs=rngs), nnx.Linear(nf, nf, rngs=rngs)])
    self.fuse = nnx.List([compute.conv(2 * nf, 2 * nf, 1, rngs=rngs),
                          compute.conv(2 * nf, nf, 1, rngs=rngs),
                          compute.conv(nf, code_len, 1, rngs=rngs)])

  def __call__(self, sr: jax.Array, code: jax.Array) -> jax.Array:
    x = sr
    for layer in self.convs:
      x = lrelu(layer(x))
    c = code
    for layer in self.code_dense:
      c = lrelu(layer(c))
    x = jnp.concatenate([x, _code_map(c, x)], axis=-1)
    x = lrelu(self.fuse[1](lrelu(self.fuse[0](x))))
    return code + jnp.mean(self.fuse[2](x), axis=(1, 2))


def iterative_correction(sftmd, predictor, corrector, lr: jax.Array, corrections: int):
  """IKC's test loop (IKC `codes/test.py`): the Predictor's code, then `corrections` times
  SR = sftmd(lr, code), code <- corrector(SR, code). sftmd, predictor and corrector are any
  callables with the signatures of `SFTMD`, `Predictor` and `Corrector`.

  lr (B, h, w, C) -> [(SR (B, s·h, s·w, C), code (B, L))]: corrections + 1 pairs, for the
  Predictor's code and after each Corrector step."""
  code = predictor(lr)
  results = []
  for step in range(corrections + 1):
    sr = sftmd(lr, code)
    results.append((sr, code))
    if step < corrections:
      code = corrector(sr, code)
  return results

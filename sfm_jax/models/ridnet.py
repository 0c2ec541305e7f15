"""RIDNet (Anwar & Barnes 2019) as in SFM's `Denoising/models.py` and `Denoising/RIDmodel/`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sfm_jax.models.layers import PLAIN, Compute
from sfm_jax.models.registry import register

RGB_MEAN = (0.4488, 0.4371, 0.4040)


class MeanShift(nnx.Module):
  """A 1×1 conv initialised to x ± mean. Trainable, as in the original, whose
  `requires_grad = False` only sets a module attribute (`RIDmodel/common.py`)."""

  def __init__(self, mean: np.ndarray, sign: float, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    c = len(mean)
    self.conv = compute.conv(c, c, 1, rngs=rngs)
    self.conv.kernel[...] = jnp.eye(c, dtype=jnp.float32)[None, None]
    self.conv.bias[...] = jnp.asarray(sign * np.asarray(mean), jnp.float32)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.conv(x)


class MergeRunDual(nnx.Module):
  """Two dilated branches (1,2) and (3,4), fused by a 3×3 conv, plus the input."""

  def __init__(self, f: int, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.body1 = nnx.List([compute.conv(f, f, 3, dilation=d, rngs=rngs) for d in (1, 2)])
    self.body2 = nnx.List([compute.conv(f, f, 3, dilation=d, rngs=rngs) for d in (3, 4)])
    self.body3 = compute.conv(2 * f, f, 3, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    a, b = x, x
    for layer in self.body1:
      a = nnx.relu(layer(a))
    for layer in self.body2:
      b = nnx.relu(layer(b))
    return nnx.relu(self.body3(jnp.concatenate([a, b], axis=-1))) + x


class ResBlock(nnx.Module):
  """relu(conv(relu(conv(x))) + x), or with a third 1×1 conv (the "enhanced" block)."""

  def __init__(self, f: int, enhanced: bool, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    kernels = (3, 3, 1) if enhanced else (3, 3)
    self.body = nnx.List([compute.conv(f, f, k, rngs=rngs) for k in kernels])

  def __call__(self, x: jax.Array) -> jax.Array:
    h = x
    for i, layer in enumerate(self.body):
      h = layer(h)
      if i < len(self.body) - 1:
        h = nnx.relu(h)
    return nnx.relu(h + x)


class ChannelAttention(nnx.Module):
  def __init__(self, f: int, reduction: int, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.c1 = compute.conv(f, f // reduction, 1, rngs=rngs)
    self.c2 = compute.conv(f // reduction, f, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = jnp.mean(x, axis=(1, 2), keepdims=True)
    return x * nnx.sigmoid(self.c2(nnx.relu(self.c1(y))))


class Block(nnx.Module):
  def __init__(self, f: int, reduction: int, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.r1 = MergeRunDual(f, rngs=rngs, compute=compute)
    self.r2 = ResBlock(f, enhanced=False, rngs=rngs, compute=compute)
    self.r3 = ResBlock(f, enhanced=True, rngs=rngs, compute=compute)
    self.ca = ChannelAttention(f, reduction, rngs=rngs, compute=compute)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.ca(self.r3(self.r2(self.r1(x))))


@register("ridnet", role="denoiser", protocol="denoise", global_context=True,
          receptive_field=lambda a: 2 + 12 * a["num_blocks"])
class RIDNet(nnx.Module):
  """RIDNet: mean shift, head conv, 4 feature-attention blocks, tail conv, mean shift back,
  plus the input. Gray: 1,497,045 parameters. Colour works here (the original's colour variant
  crashes on `torch.as_tensor(rgb_mean).view(1)`) with the per-channel DIV2K mean.

  Args:
    noisy: (B, H, W, C) in [0, 1].
    noise_level: ignored (blind).
  """

  def __init__(self, channels: int = 1, features: int = 64, reduction: int = 16,
               num_blocks: int = 4, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    mean = np.asarray(RGB_MEAN) if channels == 3 else np.full(channels, np.mean(RGB_MEAN))
    self.sub_mean = MeanShift(mean, -1.0, rngs=rngs, compute=compute)
    self.head = compute.conv(channels, features, 3, rngs=rngs)
    self.blocks = nnx.List([Block(features, reduction, rngs=rngs, compute=compute)
                            for _ in range(num_blocks)])
    self.tail = compute.conv(features, channels, 3, rngs=rngs)
    self.add_mean = MeanShift(mean, 1.0, rngs=rngs, compute=compute)

  def __call__(self, noisy: jax.Array, noise_level: jax.Array | None = None) -> jax.Array:
    h = nnx.relu(self.head(self.sub_mean(noisy)))
    for block in self.blocks:
      h = block(h)
    return self.add_mean(self.tail(h)) + noisy

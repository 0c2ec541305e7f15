"""MemNet (Tai et al. 2017) as in SFM's `Denoising/models.py` (majedelhelou/SFM)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from sfm_jax.models.layers import PLAIN, Compute, kaiming_normal
from sfm_jax.models.registry import register


class BNReLUConv(nnx.Module):
  """Pre-activation unit: BatchNorm(in) -> ReLU -> conv (no bias)."""

  def __init__(self, in_features: int, out_features: int, kernel: int = 3, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    self.bn = compute.batch_norm(in_features, rngs=rngs)
    self.conv = compute.conv(in_features, out_features, kernel, use_bias=False,
                             kernel_init=kaiming_normal, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.conv(nnx.relu(self.bn(x)))


class ResidualBlock(nnx.Module):
  def __init__(self, features: int, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.relu_conv1 = BNReLUConv(features, features, rngs=rngs, compute=compute)
    self.relu_conv2 = BNReLUConv(features, features, rngs=rngs, compute=compute)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.relu_conv2(self.relu_conv1(x)) + x


class MemoryBlock(nnx.Module):
  """`num_resblock` residual blocks, then a 1×1 gate over [their outputs, all earlier memories]."""

  def __init__(self, features: int, num_resblock: int, index: int, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    self.recursive_unit = nnx.List([ResidualBlock(features, rngs=rngs, compute=compute)
                                    for _ in range(num_resblock)])
    self.gate_unit = BNReLUConv((num_resblock + index) * features, features, 1, rngs=rngs,
                                compute=compute)

  def __call__(self, x: jax.Array, memories: list[jax.Array]) -> jax.Array:
    outputs = []
    for block in self.recursive_unit:
      x = block(x)
      outputs.append(x)
    return self.gate_unit(jnp.concatenate(outputs + memories, axis=-1))


@register("memnet", role="denoiser", protocol="denoise",
          receptive_field=lambda a: 2 + 2 * a["num_memblock"] * a["num_resblock"])
class MemNet(nnx.Module):
  """Gray MemNet: 6 memory blocks × 4 residual blocks, 20 features (194,922 parameters).

  The gate of block m sees [4 residual outputs, feature-extractor output, gates 1..m−1] in that
  channel order, as the original concatenates them.

  Args:
    noisy: (B, H, W, C) in [0, 1].
    noise_level: ignored (blind).
  Returns:
    (B, H, W, C) clean estimate (global residual).
  """

  def __init__(self, channels: int = 1, features: int = 20, num_memblock: int = 6,
               num_resblock: int = 4, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.feature_extractor = BNReLUConv(channels, features, rngs=rngs, compute=compute)
    self.dense_memory = nnx.List([MemoryBlock(features, num_resblock, m + 1, rngs=rngs,
                                              compute=compute)
                                  for m in range(num_memblock)])
    self.reconstructor = BNReLUConv(features, channels, rngs=rngs, compute=compute)

  def __call__(self, noisy: jax.Array, noise_level: jax.Array | None = None) -> jax.Array:
    out = self.feature_extractor(noisy)
    memories = [out]
    for block in self.dense_memory:
      out = block(out, memories)
      memories.append(out)
    return self.reconstructor(out) + noisy

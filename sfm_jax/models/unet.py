"""The Noise2Noise / Noise2Self U-Net of SFM's microscopy experiments (majedelhelou/SFM
`Denoising/Microscopy/models/unet.py`, `UnetN2N`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from sfm_jax.models.layers import PLAIN, Compute
from sfm_jax.models.registry import register


def _pool(x: jax.Array) -> jax.Array:
  return nnx.max_pool(x, (2, 2), (2, 2))


def _upsample(x: jax.Array) -> jax.Array:
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # nearest, ×2


# Five 2×2 poolings: H, W multiples of 32. The receptive field depends on where a pixel sits in
# the pooling grid; 158 is its largest radius over the 32 positions.
@register("unet", role="denoiser", protocol="denoise", size_multiple=32, receptive_field=158)
class UNet(nnx.Module):
  """Five-level U-Net, 3×3 convs without bias, LeakyReLU(0.1), max-pool and nearest upsampling;
  skips are concatenated as (decoder, encoder). 987,408 parameters for one channel.

  `input_offset` is added to the input and taken off the output, so that a network trained on
  another range still maps [0, 1] to [0, 1]: the release's microscopy U-Nets see x − 0.5
  (`Denoising/Microscopy/benchmark.py`, offset −0.5), its BSD ones x itself (offset 0).

  Args:
    noisy: (B, H, W, C) in [0, 1] with H and W multiples of 32.
    noise_level: ignored.
  Returns:
    (B, H, W, C) linear output (the clean estimate).
  """

  def __init__(self, channels: int = 1, features: int = 48, input_offset: float = 0.0, *,
               rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.input_offset = input_offset
    f, d = features, 2 * features
    c = lambda a, b: compute.conv(a, b, 3, use_bias=False, rngs=rngs)  # noqa: E731
    self.enc_conv0, self.enc_conv1 = c(channels, f), c(f, f)
    self.enc = nnx.List([c(f, f) for _ in range(5)])  # enc_conv2 … enc_conv6
    self.dec5 = nnx.List([c(2 * f, d), c(d, d)])
    self.dec = nnx.List([nnx.List([c(d + f, d), c(d, d)]) for _ in range(3)])  # dec 4, 3, 2
    self.dec1 = nnx.List([c(d + channels, 64), c(64, 32), c(32, channels)])

  def __call__(self, noisy: jax.Array, noise_level: jax.Array | None = None) -> jax.Array:
    h, w = noisy.shape[1:3]
    if h % 32 or w % 32:
      raise ValueError(f"UNet needs H and W multiples of 32, got {h}×{w}; pad or crop first.")
    act = lambda x: nnx.leaky_relu(x, 0.1)  # noqa: E731
    noisy = noisy + self.input_offset
    x = act(self.enc_conv1(act(self.enc_conv0(noisy))))
    skips = [noisy, _pool(x)]
    x = skips[-1]
    for layer in self.enc[:4]:  # enc_conv2..5, each followed by a pool
      x = _pool(act(layer(x)))
      skips.append(x)
    x = _upsample(act(self.enc[4](skips.pop())))  # enc_conv6 on pool5
    for block in [self.dec5, *self.dec]:
      x = jnp.concatenate([x, skips.pop()], axis=-1)
      for layer in block:
        x = act(layer(x))
      x = _upsample(x)
    x = jnp.concatenate([x, skips.pop()], axis=-1)
    x = act(self.dec1[1](act(self.dec1[0](x))))
    return self.dec1[2](x) - self.input_offset

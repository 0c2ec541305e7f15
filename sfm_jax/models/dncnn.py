"""DnCNN-B (SFM's `DnCNN_RL`) and FFDNet: plain conv + BN + ReLU stacks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from sfm_jax.models.layers import (
    PLAIN,
    Compute,
    kaiming_normal,
    pixel_shuffle,
    pixel_unshuffle,
    sfm_bn_scale_init,
)
from sfm_jax.models.registry import register


class ConvBNStack(nnx.Module):
  """conv+ReLU, (depth − 2) × [conv + BN + ReLU], conv; all 3×3, no biases (DnCNN body)."""

  def __init__(self, in_features: int, out_features: int, depth: int, features: int, *,
               rngs: nnx.Rngs, compute: Compute = PLAIN):
    widths = [in_features] + [features] * (depth - 1) + [out_features]
    self.convs = nnx.List([compute.conv(a, b, 3, use_bias=False, kernel_init=kaiming_normal,
                                        rngs=rngs)
                           for a, b in zip(widths[:-1], widths[1:], strict=True)])
    self.norms = nnx.List([compute.batch_norm(features, scale_init=sfm_bn_scale_init, rngs=rngs)
                           for _ in range(depth - 2)])

  def __call__(self, x: jax.Array) -> jax.Array:
    x = nnx.relu(self.convs[0](x))
    for layer, norm in zip(self.convs[1:-1], self.norms, strict=True):
      x = nnx.relu(norm(layer(x)))
    return self.convs[-1](x)


@register("dncnn", role="denoiser", protocol="denoise",
          receptive_field=lambda a: a["num_layers"])
class DnCNN(nnx.Module):
  """DnCNN with residual learning (Zhang et al. 2017; SFM `DnCNN_RL`): returns x − body(x).

  Defaults: 17 layers of 64 features, gray (556,032 parameters), SFM's Kaiming init.

  Args:
    noisy: (B, H, W, C) in [0, 1], any H, W.
    noise_level: ignored (blind).
  Returns:
    (B, H, W, C) clean estimate.
  """

  def __init__(self, channels: int = 1, num_layers: int = 17, features: int = 64, *,
               rngs: nnx.Rngs, compute: Compute = PLAIN):
    self.body = ConvBNStack(channels, channels, num_layers, features, rngs=rngs,
                            compute=compute)

  def __call__(self, noisy: jax.Array, noise_level: jax.Array | None = None) -> jax.Array:
    return noisy - self.body(noisy)


def ffdnet_depth(channels: int, num_layers: int | None) -> int:
  """FFDNet's conv layers: `num_layers`, else 15 for gray and 12 for colour (IPOL's)."""
  return num_layers or (15 if channels == 1 else 12)


# 2×2 pixel unshuffle: H, W even; each conv at half resolution reaches 2 pixels further.
@register("ffdnet", role="denoiser", protocol="denoise", takes_noise_level=True, size_multiple=2,
          receptive_field=lambda a: 2 * ffdnet_depth(a["channels"], a["num_layers"]) + 1)
class FFDNet(nnx.Module):
  """FFDNet (Zhang et al. 2018; Tassano's IPOL implementation): a DnCNN body on the 2×2
  pixel-unshuffled image with a noise-level map concatenated first.

  Gray: 15 layers × 64 features (486,080 parameters); colour: 12 × 96 (IPOL FFDNet `models.py`,
  as used by the MVA DELIRES TP1 template).

  Args:
    noisy: (B, H, W, C) in [0, 1] with H, W even (pad odd sizes by replication first).
    noise_level: (B,) noise std on the [0, 1] scale (σ/255).
  Returns:
    (B, H, W, C) clean estimate = noisy − estimated noise.
  """

  def __init__(self, channels: int = 1, num_layers: int | None = None,
               features: int | None = None, *, rngs: nnx.Rngs, compute: Compute = PLAIN):
    num_layers = ffdnet_depth(channels, num_layers)
    features = features or (64 if channels == 1 else 96)
    self.body = ConvBNStack(5 * channels, 4 * channels, num_layers, features, rngs=rngs,
                            compute=compute)

  def __call__(self, noisy: jax.Array, noise_level: jax.Array | None = None) -> jax.Array:
    if noise_level is None:
      raise ValueError("FFDNet needs the noise level: call model(noisy, noise_level=σ/255).")
    b, h, w, c = noisy.shape
    if h % 2 or w % 2:
      raise ValueError(f"FFDNet needs even H and W, got {h}×{w}; pad by replication first.")
    # Channel order of the original: noise map, then for each colour the four 2×2 positions.
    sub = pixel_unshuffle(noisy, 2)
    level = jnp.broadcast_to(jnp.reshape(noise_level, (b, 1, 1, 1)), (b, h // 2, w // 2, c))
    noise = pixel_shuffle(self.body(jnp.concatenate([level, sub], axis=-1)), 2)
    return noisy - noise

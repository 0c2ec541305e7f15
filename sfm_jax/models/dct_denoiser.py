"""The MVA practical's DCT denoiser: thresholding of all overlapping N×N patch DCTs.

Forward transform = a frozen VALID conv with the N² DCT basis filters; coefficients with
|c| < ratio·σ are zeroed (DC included, as the template does); the inverse conv scatters every
patch's inverse DCT back, and the sum is divided by the number of patches covering each pixel
(`TP1_Delires_2024.ipynb`, `DCT_denoiser`, in balthazarneveu/MVA24-delire). With ratio 0 it is
the identity.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sfm_jax import ops
from sfm_jax.models.layers import PLAIN, Compute
from sfm_jax.models.registry import register

THRESHOLDS = ("hard", "soft", "dhard")


def _coverage(height: int, width: int, n: int) -> np.ndarray:
  """Number of n×n windows covering each pixel, (H, W)."""
  def counts(size):
    return np.convolve(np.ones(size - n + 1), np.ones(n))
  return np.outer(counts(height), counts(width))


@register("dct_denoiser", role="denoiser", protocol="denoise", takes_noise_level=True,
          receptive_field=lambda a: a["patch"] - 1)
class DCTDenoiser(nnx.Module):
  """Hard/soft/differentiable-hard thresholding of overlapping N×N DCTs (N = 7 in the practical).

  Args:
    patch: N.
    ratio: threshold = ratio · σ; 2.7–2.9 was best for σ = 25–50 in the practical.
    threshold: "hard" (default), "soft", or "dhard" (differentiable hard, for a learned ratio).
    learnable: make `ratio` a trainable parameter (use with "dhard" or "soft").
    temperature: λ of "dhard".
    compute: ignored: the DCT transforms are frozen convs that stay float32 at the highest
      precision, whatever the compute.
  Call:
    noisy (B, H, W, C) in [0, 1] with H, W ≥ N; noise_level (B,) σ on the [0, 1] scale.
  """

  def __init__(self, channels: int = 1, patch: int = 7, ratio: float = 2.7,
               threshold: str = "hard", learnable: bool = False, temperature: float = 0.1, *,
               rngs: nnx.Rngs | None = None, compute: Compute = PLAIN):
    del rngs, compute  # nothing random; the DCT convs stay float32
    if threshold not in THRESHOLDS:
      raise ValueError(f"threshold={threshold!r}; use one of {THRESHOLDS}.")
    self.patch, self.threshold, self.temperature = patch, threshold, temperature
    value = jnp.asarray(ratio, jnp.float32)
    self.ratio = nnx.Param(value) if learnable else nnx.Variable(value)

  def _shrink(self, coeffs: jax.Array, t: jax.Array) -> jax.Array:
    if self.threshold == "hard":
      return ops.hard_threshold(coeffs, t)
    if self.threshold == "soft":
      return ops.soft_threshold(coeffs, t)
    return ops.differentiable_hard_threshold(coeffs, t, self.temperature)

  def __call__(self, noisy: jax.Array, noise_level: jax.Array | None = None) -> jax.Array:
    if noise_level is None:
      raise ValueError("DCTDenoiser needs the noise level: call model(noisy, noise_level=σ/255).")
    b, h, w, c = noisy.shape
    n = self.patch
    if h < n or w < n:
      raise ValueError(f"image {h}×{w} is smaller than the {n}×{n} DCT patch.")
    planes = noisy.transpose(0, 3, 1, 2).reshape(b * c, h, w, 1)
    dn = ("NHWC", "HWIO", "NHWC")
    coeffs = jax.lax.conv_general_dilated(planes, jnp.asarray(ops.dct_conv_filters(n)), (1, 1),
                                          "VALID", dimension_numbers=dn, precision="highest")
    t = self.ratio[...] * jnp.repeat(jnp.reshape(noise_level, (b,)), c)[:, None, None, None]
    summed = jax.lax.conv_general_dilated(
        self._shrink(coeffs, t), jnp.asarray(ops.dct_inverse_conv_filters(n)), (1, 1),
        [(n - 1, n - 1)] * 2, dimension_numbers=dn, precision="highest")
    out = summed[..., 0] / jnp.asarray(_coverage(h, w, n), noisy.dtype)
    return out.reshape(b, c, h, w).transpose(0, 2, 3, 1)

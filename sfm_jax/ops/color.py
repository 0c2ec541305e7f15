"""RGB ↔ YCbCr with ITU-R BT.601 "studio swing", MATLAB `rgb2ycbcr` convention.

For images in [0, 1]: Y ∈ [16/255, 235/255], Cb, Cr ∈ [16/255, 240/255]. SR papers report PSNR on
this Y channel (BasicSR / MATLAB protocol); `dm_pix.rgb_to_grayscale` is a different luma.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sfm_jax.ops._checks import check_float_images, check_unit_range

_HIGHEST = jax.lax.Precision.HIGHEST
# Rows: Y, Cb, Cr; columns: R, G, B; for 0–255 inputs divided by 255 (MATLAB's table).
_RGB_TO_YCBCR = np.array([[65.481, 128.553, 24.966],
                          [-37.797, -74.203, 112.0],
                          [112.0, -93.786, -18.214]]) / 255.0
_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0


def _check_rgb(images: jax.Array, name: str):
  check_float_images(images, name)
  if images.shape[-1] != 3:
    raise ValueError(f"{name} has {images.shape[-1]} channels; colour conversion needs 3 (RGB). "
                     "Gray images are already a luma channel.")


def rgb_to_ycbcr(images: jax.Array) -> jax.Array:
  """(..., H, W, 3) RGB in [0, 1] -> YCbCr in [0, 1] (MATLAB `rgb2ycbcr` / 255)."""
  _check_rgb(images, "images")
  check_unit_range(images)
  m = jnp.asarray(_RGB_TO_YCBCR, images.dtype)
  return jnp.einsum("...c,kc->...k", images, m, precision=_HIGHEST) + _OFFSET.astype(np.float32)


def ycbcr_to_rgb(images: jax.Array) -> jax.Array:
  """Inverse of `rgb_to_ycbcr` (MATLAB `ycbcr2rgb` without clipping)."""
  _check_rgb(images, "images")
  m = jnp.asarray(np.linalg.inv(_RGB_TO_YCBCR), images.dtype)
  shifted = images - _OFFSET.astype(np.float32)
  return jnp.einsum("...c,kc->...k", shifted, m, precision=_HIGHEST)


def rgb_to_y(images: jax.Array) -> jax.Array:
  """The Y channel of `rgb_to_ycbcr`, (..., H, W, 1) in [16/255, 235/255]."""
  return rgb_to_ycbcr(images)[..., :1]

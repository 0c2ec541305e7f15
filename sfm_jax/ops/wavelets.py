"""Single-level orthonormal 2-D Haar wavelet transform of NHWC arrays (FCA's wavelet
discriminator input). Perfect reconstruction: `haar_idwt(haar_dwt(x)) == x`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sfm_jax.ops._checks import check_float_images, check_multiple_of

SUBBANDS = ("LL", "LH", "HL", "HH")


def haar_dwt(x: jax.Array) -> jax.Array:
  """Haar sub-bands of each 2×2 tile [[a, b], [c, d]] of (..., H, W, C), H and W even.

  LL = (a+b+c+d)/2, LH = (a+b−c−d)/2 (vertical detail: top minus bottom), HL = (a−b+c−d)/2
  (horizontal detail: left minus right), HH = (a−b−c+d)/2. The transform is orthonormal
  (energy-preserving); other libraries differ only in band order and signs.

  Returns:
    (4, ..., H/2, W/2, C) stacked in the order of `SUBBANDS`.
  """
  check_float_images(x, "x")
  check_multiple_of(x.shape[-3], 2, "height")
  check_multiple_of(x.shape[-2], 2, "width")
  a = x[..., 0::2, 0::2, :]
  b = x[..., 0::2, 1::2, :]
  c = x[..., 1::2, 0::2, :]
  d = x[..., 1::2, 1::2, :]
  return 0.5 * jnp.stack([a + b + c + d, a + b - c - d, a - b + c - d, a - b - c + d])


def haar_idwt(bands: jax.Array) -> jax.Array:
  """Inverse of `haar_dwt`: (4, ..., h, w, C) -> (..., 2h, 2w, C)."""
  check_float_images(bands, "bands", min_rank=4)
  if bands.shape[0] != 4:
    raise ValueError(f"bands has {bands.shape[0]} sub-bands on axis 0; pass haar_dwt's output "
                     "(4, ..., h, w, C).")
  ll, lh, hl, hh = bands
  a = 0.5 * (ll + lh + hl + hh)
  b = 0.5 * (ll + lh - hl - hh)
  c = 0.5 * (ll - lh + hl - hh)
  d = 0.5 * (ll - lh - hl + hh)
  top = jnp.stack([a, b], axis=-2)  # (..., h, w, 2, C)
  bottom = jnp.stack([c, d], axis=-2)
  tiles = jnp.stack([top, bottom], axis=-4)  # (..., h, 2, w, 2, C)
  *lead, h, _, w, _, ch = tiles.shape
  return tiles.reshape(*lead, 2 * h, 2 * w, ch)

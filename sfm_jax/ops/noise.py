"""Noise degradations: AWGN (fixed or blind σ), band-limited and Gaussian-filtered noise, and
NatSR's `inject_dct`. σ is on the 0–255 scale as in the papers; images are in [0, 1]."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from sfm_jax.ops._checks import (
  check_float_images,
  check_multiple_of,
  check_nonnegative,
  check_unit_range,
)
from sfm_jax.ops.blur import gaussian_filter
from sfm_jax.ops.dct import block_dct2, block_idct2, dct2, idct2
from sfm_jax.ops.masks import low_high_mask


def sample_sigmas(key: jax.Array, batch: int, low: float = 0.0, high: float = 55.0) -> jax.Array:
  """Per-image noise levels σ ~ U(low, high) on the 0–255 scale, float32 (B,).

  The blind denoisers (DnCNN-B, SFM) train with U(0, 55).
  """
  check_nonnegative(low, "low")
  if isinstance(low, int | float) and isinstance(high, int | float) and high < low:
    raise ValueError(f"sigma range ({low}, {high}) is empty; pass low <= high.")
  return jax.random.uniform(key, (batch,), minval=low, maxval=high)


def gaussian_noise(key: jax.Array, shape: tuple[int, ...], sigma) -> jax.Array:
  """White Gaussian noise N(0, (σ/255)²), float32 `shape` (B, H, W, C).

  Args:
    key: PRNG key.
    shape: output shape, batch first.
    sigma: standard deviation on the 0–255 scale: a scalar, or (B,) for one level per image.
  """
  check_nonnegative(sigma, "sigma")
  sigma = jnp.asarray(sigma, jnp.float32) / 255.0
  sigma = sigma.reshape(sigma.shape + (1,) * (len(shape) - sigma.ndim))
  return jax.random.normal(key, shape) * sigma


def add_awgn(key: jax.Array, images: jax.Array, sigma, *, clip: bool = False):
  """Adds AWGN of level σ (0–255 scale, scalar or (B,)) to (B, H, W, C) images in [0, 1].

  Returns (noisy, noise). `clip=True` clamps the noisy images to [0, 1] as the SFM test protocol
  does (SFM `Denoising/test.py`; `docs/deviations.md`, "Denoising test protocol"); training
  inputs are not clipped in the original.
  """
  check_float_images(images, min_rank=4)
  check_unit_range(images)
  noise = gaussian_noise(key, images.shape, sigma).astype(images.dtype)
  noisy = images + noise
  return (jnp.clip(noisy, 0.0, 1.0) if clip else noisy), noise


def band_limited(noise: jax.Array, keep: str = "low", radius_perc: float = 0.5) -> jax.Array:
  """Keeps only the low or high DCT band of each noise image (mask_train_noise 2 / 1).

  Uses the inclusive masks of `get_mask_low_high` on (..., H, W, C) noise.
  """
  check_float_images(noise, "noise")
  height, width = noise.shape[-3:-1]
  mask = jnp.asarray(low_high_mask(height, width, radius_perc, keep), noise.dtype)
  return idct2(dct2(noise) * mask[:, :, None])


def brownian(noise: jax.Array, sigma: float = 3.0) -> jax.Array:
  """The original's "Brownian" noise (mask_train_noise 3): white noise Gaussian-filtered with
  σ = 3 pixels (scipy.ndimage.gaussian_filter defaults). Its std is much lower than the input's."""
  return gaussian_filter(noise, sigma)


@functools.partial(jax.jit, static_argnames="block")
def inject_dct(key: jax.Array, images: jax.Array, sigma, block: int = 8) -> jax.Array:
  """NatSR's "noisy" unnatural class: Gaussian noise on the last row and column of every
  block×block DCT tile, independently per channel (15 coefficients per 8×8 tile).

  Args:
    key: PRNG key.
    images: float (..., H, W, C) in [0, 1], H and W multiples of `block`.
    sigma: noise std in [0, 1] units (NatSR starts at 0.1), scalar.
  Returns:
    (..., H, W, C), not clipped.
  """
  check_float_images(images)
  check_multiple_of(images.shape[-3], block, "height")
  check_multiple_of(images.shape[-2], block, "width")
  in_block = jnp.arange(images.shape[-3]) % block == block - 1
  in_block_w = jnp.arange(images.shape[-2]) % block == block - 1
  edge = (in_block[:, None] | in_block_w[None, :])[:, :, None]
  noise = jax.random.normal(key, images.shape, images.dtype) * sigma
  coeffs = block_dct2(images, block) + jnp.where(edge, noise, 0.0)
  return block_idct2(coeffs, block)

"""Spectral statistics: radial mean power spectrum, FCA's "frequency density", the SFM test
script's DCT low/high-band MSE, and the error per DCT band in SFM's mask coordinates."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sfm_jax.ops._checks import check_float_images
from sfm_jax.ops.dct import dct2
from sfm_jax.ops.masks import frequency_distance, low_high_mask, sfm_radius


@functools.lru_cache(maxsize=32)
def _radial_bins(height: int, width: int, num_bins: int) -> np.ndarray:
  fy = np.fft.fftfreq(height)[:, None]
  fx = np.fft.fftfreq(width)[None, :]
  radius = np.sqrt(fy**2 + fx**2)  # cycles per pixel, 0 … 0.5·√2
  return np.minimum((radius / 0.5 * num_bins).astype(np.int64), num_bins)  # num_bins = corners


@functools.partial(jax.jit, static_argnames="num_bins")
def radial_power_spectrum(images: jax.Array, num_bins: int = 32):
  """Mean |FFT|² / (H·W) over rings of radial frequency, per image and channel.

  Args:
    images: float (..., H, W, C).
    num_bins: rings of equal width over radial frequency 0 … 0.5 cycles/pixel (corner
      frequencies beyond 0.5 are left out).
  Returns:
    (frequencies (num_bins,) ring centres in cycles/pixel, power (..., num_bins, C)).
  """
  check_float_images(images)
  height, width = images.shape[-3:-1]
  power = jnp.abs(jnp.fft.fft2(images, axes=(-3, -2))) ** 2 / (height * width)
  one_hot = jax.nn.one_hot(_radial_bins(height, width, num_bins), num_bins + 1)[..., :num_bins]
  sums = jnp.einsum("...hwc,hwk->...kc", power, one_hot)
  power = sums / jnp.maximum(one_hot.sum(axis=(0, 1)), 1.0)[:, None]
  centres = (np.arange(num_bins) + 0.5) * 0.5 / num_bins
  return jnp.asarray(centres, jnp.float32), power


@functools.partial(jax.jit, static_argnames="method")
def frequency_density(gray: jax.Array, method: str = "notebook") -> jax.Array:
  """FCA's "frequency density" curve of a set of gray patches (the CENG501 reproduction's
  `frequency_density.ipynb`; see `docs/deviations.md`, "Frequency density").

  Args:
    gray: float (N, H, W) or (N, H, W, 1) gray patches; the notebook used 0–255 values.
    method: "notebook" (default, parity with the reproduction's notebook): the mean over patches
      of |fftshift(fft2(ifftshift(img)))[:, 0]|, i.e. the horizontal-Nyquist column across all
      vertical frequencies, length H. "centre": the same on the centre column F[:, W/2] (zero
      horizontal frequency), a more interpretable profile, also length H.
  Returns:
    float32 (H,) curve ordered high–low–high frequency.
  """
  if gray.ndim == 4:
    gray = gray[..., 0]
  if gray.ndim != 3 or not jnp.issubdtype(gray.dtype, jnp.floating):
    raise ValueError(f"gray has shape {tuple(gray.shape)} and dtype {gray.dtype}; pass float "
                     "(N, H, W) or (N, H, W, 1) gray patches.")
  spectrum = jnp.fft.fftshift(
      jnp.fft.fft2(jnp.fft.ifftshift(gray, axes=(-2, -1)), axes=(-2, -1)), axes=(-2, -1))
  if method == "notebook":
    column = 0
  elif method == "centre":
    column = gray.shape[-1] // 2
  else:
    raise ValueError(f"method={method!r}; use 'notebook' or 'centre'.")
  return jnp.abs(spectrum[:, :, column]).mean(axis=0).astype(jnp.float32)


@jax.jit
def dct_band_mse(output: jax.Array, target: jax.Array):
  """Low- and high-band DCT MSE of `output` vs `target`, as the SFM test script computes it.

  Both images' orthonormal DCTs are masked with `get_mask_low_high(H, W, 0.5, ·)` (inclusive
  bounds) and the squared difference is averaged over all H·W coefficients and channels.

  Args:
    output, target: float (..., H, W, C).
  Returns:
    (low_mse, high_mse), each of shape (...) (one value per image).
  """
  check_float_images(output, "output")
  if output.shape != target.shape:
    raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in "
                     "shape; compare images of the same size.")
  height, width = output.shape[-3:-1]
  sq = (dct2(output) - dct2(target)) ** 2
  low = jnp.asarray(low_high_mask(height, width, 0.5, "low"))[:, :, None]
  high = jnp.asarray(low_high_mask(height, width, 0.5, "high"))[:, :, None]
  return (sq * low).mean(axis=(-3, -2, -1)), (sq * high).mean(axis=(-3, -2, -1))


@functools.lru_cache(maxsize=32)
def sfm_band_index(height: int, width: int, num_bins: int) -> np.ndarray:
  """int (H, W): the bin of each DCT coefficient by D / R, SFM's mask coordinates
  (D = √(i² + j²), R = √(H² + W²): 0 at DC, just under 1 at the highest frequency), in
  `num_bins` equal widths."""
  ratio = frequency_distance(height, width) / sfm_radius(height, width)
  return np.minimum((ratio * num_bins).astype(np.int64), num_bins - 1)


def dct_band_error(output: jax.Array, target: jax.Array, num_bins: int = 20) -> jax.Array:
  """The error of `output` per DCT frequency band, in SFM's mask coordinates: the mean squared
  orthonormal-DCT difference over the coefficients with D / R in [k/num_bins, (k+1)/num_bins)
  (`sfm_band_index`), and over channels. Bands with no coefficient are NaN.

  Args:
    output, target: float (..., H, W, C), the same shape.
  Returns:
    (..., num_bins) float32. Weighted by each band's coefficient count, the bands' mean is the
    pixel MSE (Parseval).
  """
  check_float_images(output, "output")
  if output.shape != target.shape:
    raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in "
                     "shape; compare images of the same size.")
  height, width = output.shape[-3:-1]
  sq = ((dct2(output) - dct2(target)) ** 2).mean(axis=-1)  # (..., H, W)
  index = sfm_band_index(height, width, num_bins)
  one_hot = jnp.asarray(index.reshape(-1)[:, None] == np.arange(num_bins)[None], jnp.float32)
  sums = sq.reshape(*sq.shape[:-2], -1) @ one_hot
  counts = one_hot.sum(axis=0)
  return jnp.where(counts > 0, sums / jnp.maximum(counts, 1.0), jnp.nan)

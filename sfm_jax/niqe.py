"""NIQE, the no-reference "Natural Image Quality Evaluator" (lower is more natural).

Mittal, Soundararajan and Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE Signal
Processing Letters 20(3), 2013; the MATLAB release `niqe_release.zip` (LIVE, UT Austin:
`computequality.m`, `computefeature.m`, `estimateaggdparam.m`) is the reference that the SR papers
(NatSR among them) report. As in that release:

- the image is taken on 0–255 integer values (colour: the Y of MATLAB's `rgb2ycbcr`) and cropped
  to whole 96×96 blocks;
- at two scales (the second made by MATLAB bicubic `imresize(·, 0.5)` with antialiasing), the
  mean-subtracted contrast-normalised coefficients (x − μ) / (σ + 1) are computed with a 7×7
  Gaussian window (σ = 7/6, replicated borders);
- each block gives 18 features per scale: the AGGD fit (α, (β_l + β_r)/2) of the coefficients and,
  for the products with their neighbours in four directions, (α, η, β_l, β_r), with α chosen by
  moment matching on the grid 0.2:0.001:10;
- the quality is the distance √((ν₁ − ν₂)ᵀ ((Σ₁ + Σ₂)/2)⁺ (ν₁ − ν₂)) between the multivariate
  Gaussian of the blocks' features and that of pristine images (`assets/niqe_pristine.npz`:
  `mu_prisparam` and `cov_prisparam` of the release's `modelparameters.mat`; see
  `sfm_jax/assets/README.md`).
"""

from __future__ import annotations

import functools
import importlib.resources

import numpy as np
from scipy import ndimage, special

from sfm_jax.ops.resize import resize_matrix

BLOCK = 96
_ALPHAS = np.arange(0.2, 10.0005, 0.001)  # MATLAB's gam = 0.2:0.001:10
# ρ(α) = Γ(2/α)² / (Γ(1/α) Γ(3/α)), the AGGD moment ratio matched to the data.
_RATIOS = (special.gamma(2 / _ALPHAS) ** 2
           / (special.gamma(1 / _ALPHAS) * special.gamma(3 / _ALPHAS)))
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical and the two diagonals


@functools.cache
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
  """(mean (36,), covariance (36, 36)) of the features of the release's pristine images."""
  with importlib.resources.files("sfm_jax.assets").joinpath("niqe_pristine.npz").open("rb") as f:
    params = np.load(f)
    return params["mu_pris_param"].reshape(-1).astype(np.float64), params["cov_pris_param"]


def _gaussian_window() -> np.ndarray:
  """MATLAB's fspecial('gaussian', 7, 7/6), normalised to sum 1."""
  taps = np.exp(-np.arange(-3, 4) ** 2 / (2 * (7 / 6) ** 2))
  window = np.outer(taps, taps)
  return window / window.sum()


def _normalized_coefficients(image: np.ndarray) -> np.ndarray:
  """(x − μ) / (σ + 1) with local Gaussian-weighted μ and σ, replicated borders."""
  window = _gaussian_window()
  mu = ndimage.correlate(image, window, mode="nearest")
  sigma = np.sqrt(np.abs(ndimage.correlate(image * image, window, mode="nearest") - mu * mu))
  return (image - mu) / (sigma + 1)


def aggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Moment-matching fit of an asymmetric generalised Gaussian to each row of x (N, M):
  (α, β_l, β_r), each (N,)."""
  negative, positive = x < 0, x > 0
  left = np.sqrt(np.sum(np.where(negative, x * x, 0), 1) / np.sum(negative, 1))
  right = np.sqrt(np.sum(np.where(positive, x * x, 0), 1) / np.sum(positive, 1))
  g = left / right
  r = np.mean(np.abs(x), 1) ** 2 / np.mean(x * x, 1)
  r_normalized = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
  alpha = _ALPHAS[np.argmin((_RATIOS[None, :] - r_normalized[:, None]) ** 2, axis=1)]
  scale = np.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha))
  return alpha, left * scale, right * scale


def block_features(blocks: np.ndarray) -> np.ndarray:
  """The 18 NIQE features of each normalised block, (N, b, b) -> (N, 18)."""
  alpha, beta_l, beta_r = aggd_fit(blocks.reshape(len(blocks), -1))
  features = [alpha, (beta_l + beta_r) / 2]
  for shift in _SHIFTS:
    pairs = blocks * np.roll(blocks, shift, axis=(1, 2))  # circular within each block
    alpha, beta_l, beta_r = aggd_fit(pairs.reshape(len(blocks), -1))
    eta = (beta_r - beta_l) * special.gamma(2 / alpha) / special.gamma(1 / alpha)
    features += [alpha, eta, beta_l, beta_r]
  return np.stack(features, axis=1)


def _blocks(image: np.ndarray, size: int) -> np.ndarray:
  """(H, W) with H, W multiples of size -> (N, size, size), blocks in column-major order."""
  rows, cols = image.shape[0] // size, image.shape[1] // size
  return image.reshape(rows, size, cols, size).transpose(2, 0, 1, 3).reshape(-1, size, size)


def _half(image: np.ndarray) -> np.ndarray:
  """MATLAB imresize(image, 0.5) (bicubic, antialiased), in float64."""
  h, w = image.shape
  rows = resize_matrix(h, h // 2, 0.5, True)
  cols = resize_matrix(w, w // 2, 0.5, True)
  return rows @ image @ cols.T


def _luma_0_255(image: np.ndarray) -> np.ndarray:
  """(H, W), (H, W, 1) or (H, W, 3), uint8 or float in [0, 1] -> (H, W) float64 on integer
  0–255 values: the gray channel, or the Y of MATLAB's rgb2ycbcr."""
  image = np.asarray(image)
  values = image.astype(np.float64) * (1 if image.dtype == np.uint8 else 255)
  if values.ndim == 3 and values.shape[-1] == 3:
    values = 16 + values @ np.array([65.481, 128.553, 24.966]) / 255
  elif values.ndim == 3 and values.shape[-1] == 1:
    values = values[..., 0]
  elif values.ndim != 2:
    raise ValueError(f"image has shape {image.shape}; pass (H, W), (H, W, 1) or (H, W, 3).")
  return np.round(values)


def niqe_or_nan(image: np.ndarray, crop_border: int = 0) -> float:
  """`niqe`, or NaN for an image too small for two blocks (a report column over mixed sizes)."""
  height, width = np.shape(image)[0] - 2 * crop_border, np.shape(image)[1] - 2 * crop_border
  if (height // BLOCK) * (width // BLOCK) < 2:
    return float("nan")
  return niqe(image, crop_border)


def niqe(image: np.ndarray, crop_border: int = 0) -> float:
  """NIQE of one image (lower is better), as the MATLAB release computes it.

  Args:
    image: (H, W), (H, W, 1) or (H, W, 3); uint8, or float in [0, 1]. Colour images are scored on
      their Y channel (MATLAB rgb2ycbcr), values rounded to integers as MATLAB's uint8 input.
    crop_border: pixels removed at every border first (the SR papers crop the scale).
  Returns:
    The NIQE score (about 3–4 for sharp natural photos, higher for blurred or noisy ones).
  """
  y = _luma_0_255(image)
  if crop_border:
    y = y[crop_border:-crop_border, crop_border:-crop_border]
  rows, cols = y.shape[0] // BLOCK, y.shape[1] // BLOCK
  if rows * cols < 2:
    raise ValueError(f"NIQE needs at least two {BLOCK}×{BLOCK} blocks; the image is "
                     f"{y.shape[0]}×{y.shape[1]} after cropping (use images of at least "
                     f"{2 * BLOCK}×{BLOCK} pixels).")
  y = y[:rows * BLOCK, :cols * BLOCK]
  features = []
  for scale in (1, 2):
    features.append(block_features(_blocks(_normalized_coefficients(y), BLOCK // scale)))
    y = _half(y)
  features = np.concatenate(features, axis=1)
  mu_pristine, cov_pristine = pristine_model()
  complete = features[~np.isnan(features).any(axis=1)]
  difference = mu_pristine - np.nanmean(features, axis=0)
  covariance = (cov_pristine + np.cov(complete, rowvar=False)) / 2
  return float(np.sqrt(difference @ np.linalg.pinv(covariance) @ difference))

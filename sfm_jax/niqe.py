"""NIQE, the no-reference "Natural Image Quality Evaluator" (lower is more natural).

Mittal, Soundararajan and Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE Signal
Processing Letters 20(3), 2013; the MATLAB release `niqe_release.zip` (LIVE, UT Austin:
`computequality.m`, `computefeature.m`, `estimateaggdparam.m`) is the reference that the SR papers
(NatSR among them) report. As in that release:

- the image is taken on 0–255 integer values and cropped to whole 96×96 blocks. Colour: the
  release's `computequality.m` scores `rgb2gray(im)`, whereas the SR evaluations (the PIRM 2018
  challenge's `calc_NIQE` via `convert_shave_image`, BasicSR's `calculate_niqe`) score the Y of
  MATLAB's `rgb2ycbcr`; `color="y"` (the default) is the latter, `color="gray"` the former;
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

Accuracy: for Set14's colour baboon (480×500, top-left 480×480 scored) BasicSR reports MATLAB R2021a
5.72957; this gives 5.72996. The 4e-4 is arithmetic, not method: the nearest-grid-point choice of α
flips between neighbours under rounding, and BasicSR's float32 (5.72958) happens to land nearer. It
is float64 here, as the MATLAB code is; on blocks with (near-)constant regions the fits follow
rounding noise, in MATLAB too, so implementations differ there by up to a few hundredths.
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
_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])  # MATLAB's


class NIQEUndefinedError(ValueError):
  """NIQE has no value for this image: fewer than two 96×96 blocks, or no contrast to fit."""


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
  with np.errstate(divide="ignore", invalid="ignore"):  # a side with no values gives NaN, as MATLAB
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


def _luma_0_255(image: np.ndarray, color: str = "y") -> np.ndarray:
  """(H, W), (H, W, 1) or (H, W, 3), uint8 or float in [0, 1] -> (H, W) float64 on integer
  0–255 values, as MATLAB computes from the uint8 image: the gray channel, or the luma `color` of
  an RGB image rounded half up (MATLAB's conversion to uint8)."""
  if color not in ("y", "gray"):
    raise ValueError(f"color={color!r}; use 'y' (rgb2ycbcr, the SR papers') or 'gray' (rgb2gray, "
                     "the MATLAB release's).")
  image = np.asarray(image)
  if image.dtype == np.uint8:
    values = image.astype(np.float64)
  elif image.dtype.kind in "biu":
    raise ValueError(f"image is {image.dtype}; pass uint8 (0–255) or float in [0, 1].")
  else:  # as when saved to an 8-bit PNG
    values = np.floor(np.clip(image.astype(np.float64), 0, 1) * 255 + 0.5)
  if values.ndim == 3 and values.shape[-1] == 1:
    return values[..., 0]
  if values.ndim == 2:
    return values
  if values.ndim != 3 or values.shape[-1] != 3:
    raise ValueError(f"image has shape {image.shape}; pass (H, W), (H, W, 1) or (H, W, 3).")
  if color == "y":  # 16 + (65.481 R + 128.553 G + 24.966 B) / 255 in exact integer arithmetic:
    # its ties (x.5, e.g. RGB 146, 124, 97) occur, and float rounding would decide them
    return 16 + np.floor((values @ np.array([65481.0, 128553.0, 24966.0]) + 127500) / 255000)
  return np.floor(values @ _RGB2GRAY + 0.5)


def niqe_or_nan(image: np.ndarray, crop_border: int = 0, color: str = "y") -> float:
  """`niqe`, or NaN where NIQE is undefined (a report column over mixed sizes)."""
  try:
    return niqe(image, crop_border, color)
  except NIQEUndefinedError:
    return float("nan")


def niqe(image: np.ndarray, crop_border: int = 0, color: str = "y") -> float:
  """NIQE of one image (lower is better), as the MATLAB release computes it.

  Args:
    image: (H, W), (H, W, 1) or (H, W, 3) RGB; uint8 on 0–255, or float in [0, 1], which is first
      made the uint8 image MATLAB would read (clipped, ×255, rounded). The luma is an integer too.
    crop_border: pixels removed at every border first (the SR papers crop the scale).
    color: for RGB input, "y" scores the Y of MATLAB rgb2ycbcr (the SR papers', BasicSR's and
      PIRM's convention) and "gray" MATLAB rgb2gray (the release's computequality.m).
  Returns:
    The NIQE score (about 2.5–5 for sharp natural photos, higher for blurred or noisy ones).
  Raises:
    NIQEUndefinedError (a ValueError): under two 96×96 blocks after cropping, or a constant image.
  """
  y = _luma_0_255(image, color)
  if crop_border:
    y = y[crop_border:-crop_border, crop_border:-crop_border]
  rows, cols = y.shape[0] // BLOCK, y.shape[1] // BLOCK
  if rows * cols < 2:
    raise NIQEUndefinedError(
        f"NIQE needs at least two {BLOCK}×{BLOCK} blocks; the image is {y.shape[0]}×{y.shape[1]} "
        f"after cropping (use images of at least {2 * BLOCK}×{BLOCK} pixels).")
  y = y[:rows * BLOCK, :cols * BLOCK]
  if y.min() == y.max():
    raise NIQEUndefinedError(f"NIQE is undefined for a constant image (all {y.flat[0]:g}).")
  features = []
  for scale in (1, 2):
    features.append(block_features(_blocks(_normalized_coefficients(y), BLOCK // scale)))
    y = _half(y)
  features = np.concatenate(features, axis=1)
  complete = features[~np.isnan(features).any(axis=1)]  # MATLAB nancov: whole rows
  if len(complete) < 2:
    raise NIQEUndefinedError("NIQE is undefined: fewer than two blocks have contrast to fit.")
  mu_pristine, cov_pristine = pristine_model()
  difference = mu_pristine - np.nanmean(features, axis=0)  # MATLAB nanmean: per feature
  covariance = (cov_pristine + np.cov(complete, rowvar=False)) / 2
  return float(np.sqrt(difference @ np.linalg.pinv(covariance) @ difference))

"""Image-quality metrics on numpy arrays, as the restoration papers compute them.

Pure functions of (H, W, C) arrays, in float64 (the dm_pix `metrics.py` shape, without JAX: the
test protocols run on host arrays):

- `psnr`: 10·log10(peak² / MSE) over all pixels (the SFM denoising protocol uses peak 1).
- `ssim`: structural similarity (scikit-image), uniform 7×7 window (the SFM test script's) or
  MATLAB's Gaussian 11×11, σ = 1.5 window (`gaussian_window=True`, the standard one that the
  evaluation protocols use by default).
- `quantize`: rounding to 8 bits, as images saved by MATLAB.
- `sr_scores`: the SR papers' (PSNR, SSIM): Y channel of BT.601 for colour images, 0–255
  values, `crop` pixels removed at every border.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from sfm_jax.ops.color import rgb_to_y


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
  """10·log10(peak² / MSE) of two same-shaped arrays, in float64; inf for equal arrays."""
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
  return float(10 * np.log10(peak**2 / mse)) if mse > 0 else float("inf")


# The smallest image side SSIM scores: its window's, Gaussian 11×11 or uniform 7×7.
SSIM_MIN_SIDE = {True: 11, False: 7}  # by gaussian_window


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0,
         gaussian_window: bool = False) -> float:
  """SSIM of two (H, W, C) images (mean over channels): uniform 7×7 window, or MATLAB's
  Gaussian 11×11 window with σ = 1.5 and population covariances (`gaussian_window`)."""
  options = ({"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
             if gaussian_window else {})
  return float(structural_similarity(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                     data_range=data_range, channel_axis=-1, **options))


def quantize(x) -> np.ndarray:
  """Round to 8 bits, as MATLAB's uint8 images: clip to [0, 1], ×255, round, /255 (float64)."""
  return np.round(np.clip(np.asarray(x, np.float64), 0, 1) * 255) / 255


def sr_scores(output: np.ndarray, target: np.ndarray, crop: int,
              y_channel: bool = True) -> tuple[float, float]:
  """(PSNR, SSIM) of (H, W, C) images in [0, 1] on 0–255 values after cropping `crop` pixels
  per border; on MATLAB's Y channel for colour images when `y_channel` (the SR papers'
  protocol), SSIM with MATLAB's 11×11 Gaussian window."""
  def prepare(image):
    image = np.asarray(image, np.float64)
    if y_channel and image.shape[-1] == 3:
      image = np.asarray(rgb_to_y(np.asarray(image, np.float32)), np.float64)
    image = image * 255
    return image[crop:-crop, crop:-crop] if crop else image

  a, b = prepare(output), prepare(target)
  return psnr(a, b, peak=255.0), ssim(a, b, data_range=255.0, gaussian_window=True)

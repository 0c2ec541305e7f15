"""The library's SSIM (sfm_jax.metrics.ssim) against two references: the formula of Wang et al.
(2004) as MATLAB's `ssim_index` computes it, written here with scipy only, and scikit-image's
`structural_similarity` called with the named settings of each window."""

import numpy as np
import pytest
from scipy.signal import convolve2d
from skimage import data
from skimage.metrics import structural_similarity

from sfm_jax.evaluation.denoise import Protocol
from sfm_jax.metrics import ssim


def reference_ssim(a, b, peak=1.0, window="gaussian"):
  """Mean SSIM map over the 'valid' part of two (H, W) images: an 11×11 Gaussian window with
  σ = 1.5 and population statistics (MATLAB `ssim_index`), or a 7×7 uniform window with sample
  statistics (scikit-image's default, the SFM test script's)."""
  if window == "gaussian":
    g = np.exp(-np.arange(-5, 6) ** 2 / (2 * 1.5**2))
    w, correction = np.outer(g, g) / np.sum(g) ** 2, 1.0
  else:
    w, correction = np.full((7, 7), 1 / 49), 49 / 48

  def mean(x):
    return convolve2d(x, w, mode="valid")

  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  mu_a, mu_b = mean(a), mean(b)
  var_a = (mean(a * a) - mu_a**2) * correction
  var_b = (mean(b * b) - mu_b**2) * correction
  cov = (mean(a * b) - mu_a * mu_b) * correction
  c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
  ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
              / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
  return float(ssim_map.mean())


def noisy_pair(image, sigma=25 / 255, seed=0):
  """(noisy, clean) float64 (H, W, C) in [0, 1] from a uint8 (H, W) or (H, W, C) image."""
  clean = np.atleast_3d(image).astype(np.float64) / 255
  noise = np.random.default_rng(seed).normal(0, sigma, clean.shape)
  return np.clip(clean + noise, 0, 1), clean


def image_pairs():
  """A gray photo, a colour photo on the 0–255 scale, and uniform noise against itself + noise."""
  random = np.random.default_rng(1).integers(0, 256, (40, 52, 2), dtype=np.uint8)
  return [(*noisy_pair(data.camera()[:128, :160]), 1.0),
          (*(x * 255 for x in noisy_pair(data.astronaut()[100:196, 150:230], seed=2)), 255.0),
          (*noisy_pair(random, sigma=0.3, seed=3), 1.0)]


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_ssim_matches_the_formula(window):
  """Each window's statistics and constants, the data range and the mean over channels."""
  for noisy, clean, peak in image_pairs():
    ours = ssim(noisy, clean, data_range=peak, gaussian_window=window == "gaussian")
    expected = np.mean([reference_ssim(noisy[..., c], clean[..., c], peak, window)
                        for c in range(clean.shape[-1])])
    assert ours == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("window, settings", [
    ("gaussian", dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)),
    ("uniform", dict(win_size=7, use_sample_covariance=True)),
])
def test_ssim_matches_scikit_image_with_the_named_settings(window, settings):
  for noisy, clean, peak in image_pairs():
    ours = ssim(noisy, clean, data_range=peak, gaussian_window=window == "gaussian")
    theirs = structural_similarity(noisy, clean, data_range=peak, channel_axis=-1, **settings)
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_the_two_windows_differ_and_the_protocol_defaults_to_the_standard_one():
  noisy, clean = noisy_pair(data.camera())
  gaussian, uniform = (ssim(noisy, clean, gaussian_window=g) for g in (True, False))
  assert gaussian < uniform - 0.005  # the uniform 7×7 window scores noisy images higher
  assert Protocol().ssim_window == "gaussian"
  with pytest.raises(ValueError, match="ssim_window"):
    Protocol(ssim_window="box")

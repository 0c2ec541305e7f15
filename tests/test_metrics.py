"""SSIM against the formula of Wang et al. (2004) as MATLAB's `ssim_index` computes it, written
here with scipy only."""

import numpy as np
import pytest
from scipy.signal import convolve2d
from skimage import data

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


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_ssim_matches_the_formula(window):
  clean = data.camera()[:128, :160].astype(np.float64) / 255
  noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1)
  ours = ssim(noisy[..., None], clean[..., None], gaussian_window=window == "gaussian")
  assert ours == pytest.approx(reference_ssim(noisy, clean, window=window), abs=1e-9)


def test_the_two_windows_differ_and_the_protocol_defaults_to_the_standard_one():
  clean = data.camera().astype(np.float64) / 255
  noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1)
  gaussian, uniform = (reference_ssim(noisy, clean, window=w) for w in ("gaussian", "uniform"))
  assert gaussian < uniform - 0.005  # the uniform 7×7 window scores noisy images higher
  assert Protocol().ssim_window == "gaussian"
  with pytest.raises(ValueError, match="ssim_window"):
    Protocol(ssim_window="box")

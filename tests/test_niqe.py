"""NIQE: the distribution fits against their formulas, and the score's behaviour on photos.

Parity with an independent implementation (BasicSR's `calculate_niqe`, which matches the MATLAB
release) was measured outside the suite, since BasicSR does not install beside this project's
PyTorch: within 0.01 on Set14 and scikit-image photos (docs/reproduction.md, "NIQE")."""

import numpy as np
import pytest
from scipy import ndimage
from skimage import data

from sfm_jax.niqe import aggd_fit, niqe, pristine_model


@pytest.mark.parametrize("shape, scale", [(2.0, np.sqrt(2.0)), (1.0, 1.0)])
def test_aggd_fit_recovers_a_gaussian_and_a_laplacian(shape, scale):
  """A GGD with shape α and scale β: density ∝ exp(−(|x|/β)^α). N(0, 1) is α = 2, β = √2;
  Laplace(1) is α = 1, β = 1."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 200_000)) if shape == 2 else rng.laplace(size=(2, 200_000))
  alpha, left, right = aggd_fit(x)
  np.testing.assert_allclose(alpha, shape, rtol=0.03)
  np.testing.assert_allclose([left, right], scale, rtol=0.02)


def test_aggd_fit_sees_asymmetry():
  rng = np.random.default_rng(1)
  x = np.abs(rng.normal(size=(1, 100_000)))
  x = np.where(rng.random(x.shape) < 0.5, -x, 3 * x)  # right side three times wider
  _, left, right = aggd_fit(x)
  assert right / left == pytest.approx(3, rel=0.03)


def test_pristine_model_is_a_valid_gaussian():
  mean, cov = pristine_model()
  assert mean.shape == (36,) and cov.shape == (36, 36)
  np.testing.assert_allclose(cov, cov.T)
  assert np.linalg.eigvalsh(cov).min() > -1e-8


def test_blur_and_noise_make_a_photo_less_natural():
  photo = data.camera()
  sharp = niqe(photo)
  blurred = niqe(np.round(ndimage.gaussian_filter(photo.astype(float), 2.0)).astype(np.uint8))
  noise = np.random.default_rng(0).normal(0, 25, photo.shape)
  noisy = niqe(np.clip(photo + noise, 0, 255).round().astype(np.uint8))
  assert 2.5 < sharp < 5 and blurred > sharp + 1 and noisy > sharp + 1


def test_input_forms_agree():
  rgb = data.astronaut()
  y = np.round(16 + rgb @ np.array([65.481, 128.553, 24.966]) / 255)
  assert niqe(rgb) == pytest.approx(niqe(y / 255), abs=1e-9)  # colour is scored on its Y
  gray = data.camera()
  assert niqe(gray) == pytest.approx(niqe(gray.astype(np.float32) / 255), abs=1e-9)
  assert niqe(gray[..., None]) == niqe(gray)
  assert niqe(gray, crop_border=4) == pytest.approx(niqe(gray[4:-4, 4:-4]), abs=1e-9)


def test_too_small_an_image_is_a_clear_error():
  with pytest.raises(ValueError, match="two 96×96 blocks"):
    niqe(np.zeros((120, 120), np.uint8))

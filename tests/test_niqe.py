"""NIQE (`sfm_jax.niqe`): the MATLAB release's published score for a benchmark image, an independent
implementation (BasicSR's `calculate_niqe`, when installed), the AGGD fits against their formulas,
and properties that any correct NIQE has."""

import functools
import hashlib
import pathlib
import re

import numpy as np
import pytest
import reference_niqe
from PIL import Image
from scipy import ndimage
from skimage import color, data

from sfm_jax.niqe import NIQEUndefinedError, aggd_fit, niqe, niqe_or_nan, pristine_model

ASSETS = pathlib.Path(__file__).resolve().parents[1] / "sfm_jax" / "assets"


@functools.cache
def photo(name: str) -> np.ndarray:
  """scikit-image's bundled photos (uint8), and blurred / noisy versions of 'camera'."""
  if name == "camera-blur2":
    return np.round(ndimage.gaussian_filter(data.camera().astype(float), 2.0)).astype(np.uint8)
  if name == "camera-noise25":
    noise = np.random.default_rng(0).normal(0, 25, (512, 512))
    return np.clip(data.camera() + noise, 0, 255).round().astype(np.uint8)
  return getattr(data, name)()


# --- the published MATLAB value ---------------------------------------------------------------

def test_matches_the_matlab_release_on_baboon(shared_data):
  """BasicSR's `calculate_niqe` docstring (XPixelGroup/BasicSR, basicsr/metrics/niqe.py): "MATLAB
  R2021a result for tests/data/baboon.png: 5.72957338". That PNG is CSet14's baboon (480×500 RGB)
  cut to 480×492, pixel for pixel; NIQE scores the top-left 480×480 of either."""
  path = shared_data / "CSet14" / "baboon.png"
  if not path.is_file():
    pytest.skip(f"{path} not found")
  rgb = np.asarray(Image.open(path).convert("RGB"))
  assert niqe(rgb[:, :492]) == niqe(rgb)
  assert niqe(rgb) == pytest.approx(5.72957338, abs=0.005)  # measured: 5.72996


# --- an independent implementation --------------------------------------------------------------

@pytest.fixture(scope="module")
def basicsr_niqe():
  """BasicSR's `calculate_niqe` (tests/reference_niqe.py); skips when it is not installed."""
  try:
    return reference_niqe.basicsr_niqe()
  except ImportError as error:
    pytest.skip(str(error))


@pytest.mark.parametrize("name", ["camera", "astronaut", "coffee", "chelsea", "rocket",
                                  "camera-blur2", "camera-noise25"])
def test_agrees_with_basicsr(basicsr_niqe, name):
  """BasicSR computes in float32 and this in float64 (as MATLAB); the α grid search turns that into
  differences of up to 0.035 (astronaut: BasicSR 3.0649, this 3.0994), most under 0.002."""
  assert niqe(photo(name)) == pytest.approx(basicsr_niqe(photo(name)), abs=0.05)


# --- the distribution fits and the pristine model -----------------------------------------------

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


def test_pristine_model_is_the_documented_file():
  sha256 = hashlib.sha256((ASSETS / "niqe_pristine.npz").read_bytes()).hexdigest()
  assert sha256 in re.findall(r"[0-9a-f]{64}", (ASSETS / "README.md").read_text())
  mean, cov = pristine_model()
  assert mean.shape == (36,) and cov.shape == (36, 36)
  np.testing.assert_allclose(cov, cov.T)
  assert np.linalg.eigvalsh(cov).min() > -1e-8


# --- properties ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["camera", "astronaut"])
def test_blur_and_noise_make_a_photo_less_natural(name):
  image = photo(name).astype(float)
  sigma = (2.0, 2.0, 0) if image.ndim == 3 else 2.0
  blurred = np.round(ndimage.gaussian_filter(image, sigma)).astype(np.uint8)
  noise = np.random.default_rng(0).normal(0, 25, image.shape)
  noisy = np.clip(image + noise, 0, 255).round().astype(np.uint8)
  sharp = niqe(photo(name))
  assert 2.5 < sharp < 5 and niqe(blurred) > sharp + 1 and niqe(noisy) > sharp + 1


def test_input_forms_agree():
  gray, rgb = data.camera(), data.astronaut()
  assert niqe(gray) == niqe(gray.astype(np.float32) / 255) == niqe(gray / 255)
  assert niqe(gray[..., None]) == niqe(gray)
  assert niqe(rgb) == niqe(rgb / 255)
  assert niqe(gray, crop_border=4) == niqe(gray[4:-4, 4:-4])
  # colour is scored on the Y of rgb2ycbcr (scikit-image's equals MATLAB's), rounded as uint8
  y = np.floor(color.rgb2ycbcr(rgb)[..., 0] + 0.5)
  assert niqe(rgb) == pytest.approx(niqe(y / 255), abs=1e-9)
  # MATLAB's rgb2gray weights sum to 1: a gray photo in RGB is itself; Y would rescale it
  rgb_gray = np.repeat(gray[..., None], 3, axis=-1)
  assert niqe(rgb_gray, color="gray") == pytest.approx(niqe(gray), abs=1e-9)
  assert abs(niqe(rgb_gray) - niqe(gray)) > 1e-3


def test_undefined_cases_are_clear_errors():
  with pytest.raises(NIQEUndefinedError, match="two 96×96 blocks"):
    niqe(np.zeros((120, 120), np.uint8))
  with pytest.raises(NIQEUndefinedError, match="constant"):
    niqe(np.full((200, 300), 0.3))
  assert issubclass(NIQEUndefinedError, ValueError)
  assert np.isnan(niqe_or_nan(np.zeros((120, 120), np.uint8)))
  assert np.isnan(niqe_or_nan(np.full((200, 300, 3), 77, np.uint8)))
  with pytest.raises(ValueError, match="color="):
    niqe(data.astronaut(), color="lab")

"""Thresholds, Haar wavelets, colour conversion and spectra against formulas and numpy."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft

from sfm_jax import ops

# --- thresholds -----------------------------------------------------------------------------


def test_hard_and_soft_thresholds_formulas():
  x = jnp.array([-3.0, -1.2, -0.5, 0.0, 0.5, 1.2, 3.0])
  np.testing.assert_allclose(ops.hard_threshold(x, 1.2), [-3, -1.2, 0, 0, 0, 1.2, 3])
  np.testing.assert_allclose(ops.soft_threshold(x, 1.2), [-1.8, 0, 0, 0, 0, 0, 1.8], atol=1e-6)


def test_differentiable_hard_threshold_limits(rng):
  x = jnp.asarray(rng.normal(scale=3, size=1000).astype(np.float32))
  x = x[jnp.abs(jnp.abs(x) - 1.2) > 0.05]  # away from the jump
  np.testing.assert_allclose(ops.differentiable_hard_threshold(x, 1.2, 1e-4),
                             ops.hard_threshold(x, 1.2), atol=1e-4)
  np.testing.assert_allclose(ops.differentiable_hard_threshold(x, 1.2, 1e5),
                             ops.soft_threshold(x, 1.2), atol=1e-3)


def test_threshold_gradient_exists_and_learns_a_hard_threshold(rng):
  """The practical's proof of concept: fit T of dhard to hard(x, 2.4) from T = 1."""
  x = jnp.asarray(8 * rng.normal(size=2000).astype(np.float32))
  target = ops.hard_threshold(x, 2.4)
  loss = lambda t, lam: jnp.mean((ops.differentiable_hard_threshold(x, t, lam) - target) ** 2)  # noqa: E731
  grad = jax.jit(jax.grad(loss))  # one compilation for the 400 steps
  g = grad(1.0, 0.5)
  assert np.isfinite(float(g)) and float(g) != 0.0
  t = 1.0
  for lam in np.linspace(5, 0, 400) + 1e-3:
    t = t - 0.05 * grad(t, lam)
  assert abs(float(t) - 2.4) < 0.15, t


# --- Haar -----------------------------------------------------------------------------------


def haar_matrix(n):
  """Orthonormal one-level Haar analysis matrix: rows of sums then differences of pairs."""
  m = np.zeros((n, n))
  for k in range(n // 2):
    m[k, 2 * k: 2 * k + 2] = [1, 1]
    m[n // 2 + k, 2 * k: 2 * k + 2] = [1, -1]
  return m / np.sqrt(2)


def test_haar_matches_separable_matrix_form(rng):
  x = rng.random((6, 10), dtype=np.float32).astype(np.float64)
  t = haar_matrix(6) @ x @ haar_matrix(10).T  # [[LL, HL], [LH, HH]] quadrants
  bands = np.asarray(ops.haar_dwt(jnp.asarray(x, jnp.float32)[:, :, None]))[..., 0]
  np.testing.assert_allclose(bands[0], t[:3, :5], atol=1e-6)  # LL
  np.testing.assert_allclose(bands[1], t[3:, :5], atol=1e-6)  # LH: top minus bottom
  np.testing.assert_allclose(bands[2], t[:3, 5:], atol=1e-6)  # HL: left minus right
  np.testing.assert_allclose(bands[3], t[3:, 5:], atol=1e-6)  # HH


def test_haar_round_trip_and_energy(rng):
  x = jnp.asarray(rng.normal(size=(2, 3, 16, 12, 3)).astype(np.float32))
  bands = jax.jit(ops.haar_dwt)(x)
  assert bands.shape == (4, 2, 3, 8, 6, 3)
  np.testing.assert_allclose(jax.jit(ops.haar_idwt)(bands), x, atol=1e-6)
  np.testing.assert_allclose(jnp.sum(bands**2), jnp.sum(x**2), rtol=1e-5)
  with pytest.raises(ValueError, match="multiple of 2"):
    ops.haar_dwt(jnp.zeros((1, 7, 8, 1)))


# --- colour ---------------------------------------------------------------------------------


def test_ycbcr_matches_matlab_reference_values():
  rgb = jnp.array([[[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]]])
  ycc = np.asarray(ops.rgb_to_ycbcr(rgb))[0, 0] * 255
  np.testing.assert_allclose(ycc[0], [235, 128, 128], atol=1e-3)
  np.testing.assert_allclose(ycc[1], [16, 128, 128], atol=1e-3)
  np.testing.assert_allclose(ycc[2], [16 + 65.481, 128 - 37.797, 128 + 112.0], atol=1e-3)


def test_ycbcr_round_trip_and_y(rng):
  rgb = jnp.asarray(rng.random((2, 9, 7, 3), dtype=np.float32))
  np.testing.assert_allclose(ops.ycbcr_to_rgb(ops.rgb_to_ycbcr(rgb)), rgb, atol=1e-5)
  np.testing.assert_allclose(ops.rgb_to_y(rgb), ops.rgb_to_ycbcr(rgb)[..., :1])
  with pytest.raises(ValueError, match="needs 3"):
    ops.rgb_to_y(jnp.zeros((4, 4, 1)))


# --- spectra --------------------------------------------------------------------------------


def test_radial_power_spectrum_matches_ring_means_and_is_flat_for_white_noise(rng):
  noise = rng.normal(scale=0.2, size=(8, 64, 48, 2)).astype(np.float32)
  freqs, power = ops.radial_power_spectrum(jnp.asarray(noise), num_bins=8)
  assert freqs.shape == (8,) and power.shape == (8, 8, 2)
  periodogram = np.abs(np.fft.fft2(noise.astype(np.float64), axes=(1, 2))) ** 2 / (64 * 48)
  f = np.hypot(*np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(48), indexing="ij"))
  for k in range(8):
    ring = (f >= k / 16) & (f < (k + 1) / 16)
    np.testing.assert_allclose(power[:, k], periodogram[:, ring].mean(axis=1), rtol=1e-4)
  np.testing.assert_allclose(power[:, 1:].mean(axis=0), 0.04, rtol=0.1)  # flat at σ²


def test_frequency_density_matches_notebook_formula(rng):
  patches = rng.integers(0, 256, size=(5, 16, 16)).astype(np.float32)
  want = np.mean([np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(p)))[:, 0])
                  for p in patches], axis=0)
  np.testing.assert_allclose(ops.frequency_density(jnp.asarray(patches)), want, rtol=1e-4)
  centre = np.mean([np.abs(np.fft.fftshift(np.fft.fft2(p))[:, 8]) for p in patches], axis=0)
  np.testing.assert_allclose(ops.frequency_density(jnp.asarray(patches)[..., None], "centre"),
                             centre, rtol=1e-4)


def test_dct_band_mse_matches_sfm_test_script(rng):
  out = rng.random((21, 30), dtype=np.float32)
  clean = rng.random((21, 30), dtype=np.float32)
  d_out, d_clean = (scipy.fft.dctn(a.astype(np.float64), norm="ortho") for a in (out, clean))
  low, high = ops.low_high_mask(21, 30, 0.5, "low"), ops.low_high_mask(21, 30, 0.5, "high")
  got_low, got_high = ops.dct_band_mse(jnp.asarray(out)[..., None], jnp.asarray(clean)[..., None])
  np.testing.assert_allclose(got_low, np.mean((low * d_out - low * d_clean) ** 2), rtol=1e-5)
  np.testing.assert_allclose(got_high, np.mean((high * d_out - high * d_clean) ** 2), rtol=1e-5)


# --- packaging ------------------------------------------------------------------------------


def test_importing_ops_pulls_in_neither_tensorflow_nor_flax():
  code = ("import sys, sfm_jax.ops; "
          "bad = [m for m in ('tensorflow', 'flax', 'tensorflow_datasets') if m in sys.modules]; "
          "print(bad); sys.exit(1 if bad else 0)")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert result.returncode == 0, result.stdout + result.stderr


def test_dct_band_error_places_each_basis_function_in_its_band_and_keeps_parseval(rng):
  """An error that is one DCT basis function (i, j) of amplitude a shows up only in the band of
  D/R = √(i² + j²)/√(H² + W²), as a²/(coefficients in that band); the count-weighted mean of the
  bands is the pixel MSE (scipy's orthonormal DCT as the reference)."""
  h, w, bins = 24, 40, 10
  coeffs = np.zeros((h, w))
  coeffs[9, 30] = 3.0
  error = scipy.fft.idctn(coeffs, norm="ortho")[..., None].astype(np.float32)
  zero = np.zeros_like(error)
  bands = np.asarray(ops.dct_band_error(jnp.asarray(error), jnp.asarray(zero), bins))
  band = int(np.sqrt(9**2 + 30**2) / np.sqrt(h**2 + w**2) * bins)
  index = ops.sfm_band_index(h, w, bins)
  assert np.flatnonzero(bands > 1e-9).tolist() == [band]
  assert bands[band] == pytest.approx(9.0 / np.sum(index == band), rel=1e-5)

  x, y = (rng.random((2, h, w, 3)).astype(np.float32) for _ in range(2))
  per_band = np.asarray(ops.dct_band_error(jnp.asarray(x), jnp.asarray(y), bins))
  counts = np.bincount(index.ravel(), minlength=bins)
  np.testing.assert_allclose(per_band @ counts / counts.sum(), ((x - y) ** 2).mean(axis=(1, 2, 3)),
                             rtol=1e-4)

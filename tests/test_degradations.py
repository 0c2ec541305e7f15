"""Noise, blur and resize against scipy / PIL / formulas, and the literature's bicubic figures."""

import glob

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
import scipy.ndimage
from PIL import Image

from sfm_jax import ops


@pytest.mark.parametrize("sigma", [0.7, 1.5, 3.0])
@pytest.mark.parametrize("shape", [(40, 33, 1), (2, 30, 50, 3)])
def test_gaussian_filter_matches_scipy(rng, sigma, shape):
  x = rng.normal(size=shape).astype(np.float32)
  sig = [0] * (len(shape) - 3) + [sigma, sigma, 0]
  want = scipy.ndimage.gaussian_filter(x.astype(np.float64), sig, mode="reflect")
  np.testing.assert_allclose(ops.gaussian_filter(jnp.asarray(x), sigma), want, atol=1e-5)


def test_brownian_noise_is_gaussian_filtered_with_sigma_3(rng):
  noise = rng.normal(size=(1, 64, 64, 1)).astype(np.float32)
  want = scipy.ndimage.gaussian_filter(noise[0, :, :, 0].astype(np.float64), 3)
  np.testing.assert_allclose(ops.brownian(jnp.asarray(noise))[0, :, :, 0], want, atol=1e-5)


def test_awgn_levels_per_image_on_the_255_scale():
  sigmas = jnp.array([0.0, 10.0, 55.0])
  noise = ops.gaussian_noise(jax.random.key(0), (3, 128, 128, 1), sigmas)
  std = np.asarray(noise).reshape(3, -1).std(axis=1) * 255
  np.testing.assert_allclose(std, sigmas, rtol=0.02)
  noisy, added = ops.add_awgn(jax.random.key(1), jnp.full((1, 64, 64, 1), 0.5), 200.0, clip=True)
  assert float(noisy.min()) == 0.0 and float(noisy.max()) == 1.0
  assert float(jnp.abs(added).max()) > 0.5


def test_blind_sigmas_are_uniform_in_range():
  s = np.asarray(ops.sample_sigmas(jax.random.key(0), 20000, 0.0, 55.0))
  assert s.min() >= 0 and s.max() < 55
  assert abs(s.mean() - 27.5) < 4 * 55 / np.sqrt(12 * 20000)
  with pytest.raises(ValueError, match="is empty"):
    ops.sample_sigmas(jax.random.key(0), 4, 30.0, 10.0)


@pytest.mark.parametrize("keep", ["low", "high"])
def test_band_limited_noise_lives_in_its_band(rng, keep):
  noise = jnp.asarray(rng.normal(size=(2, 48, 40, 1)).astype(np.float32))
  out = ops.band_limited(noise, keep)
  coeffs = scipy.fft.dctn(np.asarray(out, np.float64), axes=(1, 2), norm="ortho")
  outside = ops.low_high_mask(48, 40, 0.5, keep) == 0
  assert np.abs(coeffs[:, outside]).max() < 1e-5
  np.testing.assert_allclose(ops.band_limited(out, keep), out, atol=1e-5)  # a projection


def test_isotropic_kernel_formula_and_ikc_sampling():
  k = np.asarray(ops.gaussian_kernel(21, 2.6))
  ax = np.arange(-10, 11)
  ref = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * 2.6**2))
  np.testing.assert_allclose(k, ref / ref.sum(), atol=1e-7)
  kernels, sigmas = ops.sample_gaussian_kernels(jax.random.key(0), 64)
  assert kernels.shape == (64, 21, 21) and 0.2 <= float(sigmas.min()) <= float(sigmas.max()) <= 4
  np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, atol=1e-5)


def test_anisotropic_kernel_covariance():
  sx, sy, theta = 3.0, 1.0, np.pi / 6
  k = np.asarray(ops.anisotropic_gaussian_kernel(41, sx, sy, theta), np.float64)
  ax = np.arange(-20, 21)
  xx, yy = np.meshgrid(ax, ax, indexing="xy")
  cov = np.array([[np.sum(k * xx * xx), np.sum(k * xx * yy)],
                  [np.sum(k * xx * yy), np.sum(k * yy * yy)]])
  rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
  np.testing.assert_allclose(cov, rot @ np.diag([sx**2, sy**2]) @ rot.T, atol=2e-3)
  np.testing.assert_allclose(ops.anisotropic_gaussian_kernel(21, 2.0, 2.0, 0.7),
                             ops.gaussian_kernel(21, 2.0), atol=1e-7)


def test_blur_per_image_per_channel_matches_scipy_convolve(rng):
  images = rng.random((3, 24, 30, 2), dtype=np.float32)
  kernels = np.asarray(ops.anisotropic_gaussian_kernel(
      7, jnp.array([0.5, 1.5, 2.5]), jnp.array([1.0, 0.6, 2.0]), jnp.array([0.0, 0.4, 1.2]))).copy()
  kernels[1, 0, 0] += 0.05  # asymmetric, so a correlation/convolution mix-up shows
  got = ops.blur(jnp.asarray(images), jnp.asarray(kernels))
  for b in range(3):
    for c in range(2):
      want = scipy.ndimage.convolve(images[b, :, :, c].astype(np.float64), kernels[b],
                                    mode="mirror")
      np.testing.assert_allclose(got[b, :, :, c], want, atol=1e-5)
  shared = ops.blur(jnp.asarray(images), jnp.asarray(kernels[0]))
  np.testing.assert_allclose(shared[2], ops.blur(jnp.asarray(images[2:]), kernels[0])[0],
                             atol=1e-6)


def test_inject_dct_changes_only_last_row_and_column_of_each_block(rng):
  x = jnp.asarray(rng.random((2, 16, 24, 3), dtype=np.float32))
  np.testing.assert_allclose(ops.inject_dct(jax.random.key(0), x, 0.0), x, atol=1e-6)
  out = ops.inject_dct(jax.random.key(0), x, 0.1)
  tiles = lambda a: np.asarray(a, np.float64).reshape(2, 2, 8, 3, 8, 3)  # noqa: E731
  delta = scipy.fft.dctn(tiles(out) - tiles(x), axes=(2, 4), norm="ortho")
  edge = np.zeros((8, 8), bool)
  edge[7, :] = edge[:, 7] = True
  assert np.abs(delta.transpose(0, 1, 3, 5, 2, 4)[..., ~edge]).max() < 1e-5
  assert np.abs(delta.transpose(0, 1, 3, 5, 2, 4)[..., edge]).min() > 0
  # Independent per channel, and the spatial noise power is 15σ²/64 per pixel on average.
  big = ops.inject_dct(jax.random.key(1), jnp.zeros((64, 32, 32, 3)), 0.1)
  assert abs(float(jnp.mean(big**2)) / (15 * 0.01 / 64) - 1) < 0.03
  assert abs(float(jnp.corrcoef(big[..., 0].ravel(), big[..., 1].ravel())[0, 1])) < 0.02


# --- MATLAB bicubic -------------------------------------------------------------------------

def test_resize_matrix_rows_sum_to_one_and_mirror_borders():
  for n_in, n_out, scale in [(10, 5, 0.5), (9, 3, 1 / 3), (7, 28, 4.0), (5, 10, 2.0)]:
    m = ops.resize_matrix(n_in, n_out, scale)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
  ramp = np.arange(8.0)
  up = ops.resize_matrix(8, 16, 2.0) @ ramp
  np.testing.assert_allclose(up[4:-4], np.arange(16)[4:-4] / 2 - 0.25, atol=1e-12)  # exact on lines


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 2.0, 3.0])
def test_imresize_interior_matches_pil_bicubic(rng, scale):
  """PIL's BICUBIC is the same Keys a=-0.5 kernel with MATLAB's antialias stretching; only the
  border handling differs (PIL renormalises a clipped window, MATLAB mirrors)."""
  img = rng.random((48, 60), dtype=np.float32)
  out_h, out_w = int(np.ceil(48 * scale)), int(np.ceil(60 * scale))
  want = np.asarray(Image.fromarray(img, mode="F").resize((out_w, out_h), Image.BICUBIC))
  got = np.asarray(ops.imresize(jnp.asarray(img)[:, :, None], scale=scale))[:, :, 0]
  assert got.shape == want.shape
  border = int(np.ceil(2 * max(1, 1 / scale) * scale)) + 1
  np.testing.assert_allclose(got[border:-border, border:-border],
                             want[border:-border, border:-border], atol=2e-5)


def test_imresize_preserves_constants_and_batches(rng):
  x = jnp.full((2, 3, 17, 23, 3), 0.3, jnp.float32)
  y = ops.imresize(x, scale=0.25)
  assert y.shape == (2, 3, 5, 6, 3)
  np.testing.assert_allclose(y, 0.3, atol=1e-6)
  z = ops.imresize(x, output_size=(34, 10))
  assert z.shape == (2, 3, 34, 10, 3)


LITERATURE_BICUBIC = {  # PSNR on Y, crop = scale (e.g. the SRCNN / VDSR / EDSR tables)
    ("CSet5", 2): (33.66, 0.05), ("CSet5", 3): (30.39, 0.05), ("CSet5", 4): (28.42, 0.05),
    ("CSet14", 2): (30.24, 0.1), ("CSet14", 3): (27.55, 0.1), ("CSet14", 4): (26.00, 0.1),
}


@pytest.mark.parametrize("dataset, scale", [
    case if case[0] == "CSet5" else pytest.param(*case, marks=pytest.mark.slow)
    for case in sorted(LITERATURE_BICUBIC)])  # Set14's larger images with -m slow
def test_bicubic_baseline_matches_literature(shared_data, dataset, scale):
  """HR -> MATLAB imresize 1/s -> uint8 -> imresize s -> uint8, PSNR on MATLAB Y, crop s."""
  quantise = lambda x: jnp.round(jnp.clip(x, 0, 1) * 255) / 255  # noqa: E731
  psnrs = []
  for path in sorted(glob.glob(str(shared_data / dataset / "*.png"))):
    hr = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
    hr = jnp.asarray(hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale])
    up = quantise(ops.imresize(quantise(ops.imresize(hr, scale=1 / scale)), scale=float(scale)))
    y_hr, y_up = (np.asarray(ops.rgb_to_y(a), np.float64)[scale:-scale, scale:-scale] * 255
                  for a in (hr, up))
    psnrs.append(10 * np.log10(255**2 / np.mean((y_hr - y_up) ** 2)))
  want, tolerance = LITERATURE_BICUBIC[dataset, scale]
  assert abs(np.mean(psnrs) - want) <= tolerance, np.mean(psnrs)

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
import scipy.fftpack
import scipy.signal

from sfm_jax import ops


@pytest.mark.parametrize("shape", [(64, 64, 1), (2, 13, 7, 3), (5, 1, 9, 2), (3, 2, 31, 17, 1)])
def test_dct2_matches_scipy(rng, shape):
  x = rng.random(shape, dtype=np.float32)
  want = scipy.fft.dctn(x.astype(np.float64), axes=(-3, -2), norm="ortho")
  np.testing.assert_allclose(ops.dct2(jnp.asarray(x)), want, atol=1e-5)
  np.testing.assert_allclose(ops.idct2(jnp.asarray(want, jnp.float32)), x, atol=1e-5)


def test_dct2_matches_authors_rows_then_columns(rng):
  img = rng.random((20, 33), dtype=np.float32)
  want = scipy.fftpack.dct(scipy.fftpack.dct(img, axis=0, norm="ortho"), axis=1, norm="ortho")
  np.testing.assert_allclose(ops.dct2(jnp.asarray(img)[:, :, None])[:, :, 0], want, atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 64])
def test_dct_matrix_is_orthonormal(n):
  m = ops.dct_matrix(n)
  np.testing.assert_allclose(m @ m.T, np.eye(n), atol=1e-12)


def test_dct2_round_trip_and_energy(rng):
  x = jnp.asarray(rng.normal(size=(4, 24, 40, 3)).astype(np.float32))
  c = ops.dct2(x)
  np.testing.assert_allclose(ops.idct2(c), x, atol=1e-5)
  np.testing.assert_allclose(jnp.sum(c**2), jnp.sum(x**2), rtol=1e-5)


def test_block_dct_matches_scipy_per_tile(rng):
  x = rng.random((2, 16, 24, 3), dtype=np.float32)
  tiles = x.reshape(2, 2, 8, 3, 8, 3)
  want = scipy.fft.dctn(tiles.astype(np.float64), axes=(2, 4), norm="ortho").reshape(x.shape)
  got = ops.block_dct2(jnp.asarray(x))
  np.testing.assert_allclose(got, want, atol=1e-5)
  np.testing.assert_allclose(ops.block_idct2(got), x, atol=1e-5)


def test_block_dct_rejects_sizes_not_multiple_of_block():
  with pytest.raises(ValueError, match="multiple of 8"):
    ops.block_dct2(jnp.zeros((1, 12, 16, 1)))


@pytest.mark.parametrize("n", [3, 7])
def test_dct_conv_filters_give_patch_dcts(rng, n):
  img = rng.random((11, 9), dtype=np.float32)
  out = jax.lax.conv_general_dilated(
      jnp.asarray(img)[None, :, :, None], jnp.asarray(ops.dct_conv_filters(n)), (1, 1), "VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest")[0]
  for i, j in [(0, 0), (2, 1), (11 - n, 9 - n)]:
    want = scipy.fft.dctn(img[i:i + n, j:j + n].astype(np.float64), norm="ortho").ravel()
    np.testing.assert_allclose(out[i, j], want, atol=1e-5)


def test_dct_inverse_conv_filters_sum_patch_reconstructions(rng):
  n, img = 5, rng.random((12, 10), dtype=np.float32)
  conv = lambda x, w, pad: jax.lax.conv_general_dilated(  # noqa: E731
      x, jnp.asarray(w), (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"),
      precision="highest")
  coeffs = conv(jnp.asarray(img)[None, :, :, None], ops.dct_conv_filters(n), "VALID")
  summed = conv(coeffs, ops.dct_inverse_conv_filters(n), [(n - 1, n - 1)] * 2)[0, :, :, 0]
  ones = np.ones_like(img)
  count = scipy.signal.convolve2d(ones[: 12 - n + 1, : 10 - n + 1], np.ones((n, n)))
  np.testing.assert_allclose(summed, img * count, atol=1e-4)


def test_dct_is_jittable_and_vmappable(rng):
  x = jnp.asarray(rng.random((3, 2, 8, 6, 1), dtype=np.float32))
  vm = jax.vmap(ops.dct2)(x)
  np.testing.assert_allclose(vm, ops.dct2(x), atol=1e-6)
  np.testing.assert_allclose(jax.jit(lambda y: ops.idct2(ops.dct2(y)))(x), x, atol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((8, 8, 1), np.uint8), "dtype uint8"),
    (np.zeros((8, 8), np.float32), "rank >= 3"),
])
def test_dct_bad_input_names_the_fix(bad, message):
  with pytest.raises(ValueError, match=message):
    ops.dct2(jnp.asarray(bad))

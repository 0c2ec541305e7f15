"""Orthonormal DCT-II in matrix form over the spatial axes of NHWC arrays.

`dct2(x)` equals `scipy.fft.dctn(x, axes=(-3, -2), norm="ortho")` (and scipy.fftpack's rows-then-
columns `dct(dct(x, axis=0, norm='ortho'), axis=1, norm='ortho')`, which is what the SFM authors
call). The matrix form (two small matmuls) is several times faster on CPU than an FFT-based DCT
and runs on the MXU/tensor cores on accelerators.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sfm_jax.ops._checks import check_float_images, check_multiple_of
from sfm_jax.ops._sharding import per_batch_shard

_HIGHEST = jax.lax.Precision.HIGHEST


@functools.lru_cache(maxsize=64)
def dct_matrix(n: int) -> np.ndarray:
  """Orthonormal DCT-II matrix M (n, n), float64: `M @ v` is the DCT of a length-n vector.

  M[k, i] = s_k cos(pi (2i + 1) k / (2n)), s_0 = sqrt(1/n), s_k = sqrt(2/n). M is orthogonal,
  so the inverse DCT (DCT-III) is M.T.
  """
  k = np.arange(n)[:, None]
  i = np.arange(n)[None, :]
  m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
  m[0] /= np.sqrt(2.0)
  m.setflags(write=False)
  return m


def _to_rows(x: jax.Array) -> jax.Array:
  """(..., H, W, C) -> (H, ..., C, W): both spatial transforms become plain 2-D GEMMs."""
  return jnp.swapaxes(jnp.moveaxis(x, -3, 0), -1, -2)


def _from_rows(t: jax.Array) -> jax.Array:
  return jnp.moveaxis(jnp.swapaxes(t, -1, -2), 0, -3)


def _gemm_hw(t: jax.Array, mh: jax.Array, mw: jax.Array) -> jax.Array:
  """mh · plane · mwᵀ for every plane of t = (H, ..., W), as two 2-D GEMMs, no transposes."""
  h, w = t.shape[0], t.shape[-1]
  rows = jnp.matmul(t.reshape(-1, w), mw.T, precision=_HIGHEST)  # (H·N, W') over W
  out = jnp.matmul(mh, rows.reshape(h, -1), precision=_HIGHEST)  # over H
  return out.reshape(mh.shape[0], *t.shape[1:-1], mw.shape[0])


def _transform_hw(x: jax.Array, h_matrix: np.ndarray, w_matrix: np.ndarray) -> jax.Array:
  """Returns h_matrix · x · w_matrixᵀ for every channel image of (..., H, W, C)."""
  mh, mw = jnp.asarray(h_matrix, x.dtype), jnp.asarray(w_matrix, x.dtype)
  return _from_rows(_gemm_hw(_to_rows(x), mh, mw))


def _masked_rows(masks: jax.Array, dtype) -> jax.Array:
  """(B, H, W) masks in the (H, B, C=1, W) row layout."""
  return jnp.swapaxes(masks, 0, 1)[:, :, None, :].astype(dtype)


def filter_dct(x: jax.Array, masks: jax.Array) -> jax.Array:
  """idct2(dct2(x) · masks) for (B, H, W, C) images and (B, H, W) masks shared by channels.

  One layout change in and one out; the four GEMMs run back to back.
  """
  _, h, w, _ = x.shape
  mh, mw = jnp.asarray(dct_matrix(h), x.dtype), jnp.asarray(dct_matrix(w), x.dtype)
  coeffs = _gemm_hw(_to_rows(x), mh, mw) * _masked_rows(masks, x.dtype)  # (H, B, C, W)
  return _from_rows(_gemm_hw(coeffs, mh.T, mw.T))


def synthesize_dct(coeffs: jax.Array, masks: jax.Array) -> jax.Array:
  """idct2(coeffs · masks) for (B, H, W, C) coefficients and (B, H, W) masks."""
  _, h, w, _ = coeffs.shape
  mh, mw = jnp.asarray(dct_matrix(h), coeffs.dtype), jnp.asarray(dct_matrix(w), coeffs.dtype)
  return _from_rows(_gemm_hw(_to_rows(coeffs) * _masked_rows(masks, coeffs.dtype), mh.T, mw.T))


@jax.jit
def dct2(x: jax.Array) -> jax.Array:
  """2-D orthonormal DCT-II of each channel.

  Args:
    x: float array (..., H, W, C); any H, W (odd and non-square included).
  Returns:
    Coefficients (..., H, W, C); index (0, 0) is DC, frequencies grow with the index.
  """
  check_float_images(x, "x")
  h, w = x.shape[-3:-1]
  return _per_image(lambda x: _transform_hw(x, dct_matrix(h), dct_matrix(w)), x)


@jax.jit
def idct2(coeffs: jax.Array) -> jax.Array:
  """Inverse of `dct2` (orthonormal DCT-III over the spatial axes of (..., H, W, C))."""
  check_float_images(coeffs, "coeffs")
  h, w = coeffs.shape[-3:-1]
  return _per_image(lambda c: _transform_hw(c, dct_matrix(h).T, dct_matrix(w).T), coeffs)


def _per_image(transform, x: jax.Array) -> jax.Array:
  """transform(x), by every device on its share of an explicitly sharded batch (x.ndim ≥ 4)."""
  return per_batch_shard(transform, x) if x.ndim >= 4 else transform(x)


def _to_blocks(x: jax.Array, block: int) -> jax.Array:
  """(..., H, W, C) -> (..., H/b, b, W/b, b, C)."""
  check_float_images(x, "x")
  h, w, c = x.shape[-3:]
  check_multiple_of(h, block, "height")
  check_multiple_of(w, block, "width")
  return x.reshape(*x.shape[:-3], h // block, block, w // block, block, c)


def _blockwise(x: jax.Array, matrix: np.ndarray, block: int) -> jax.Array:
  blocks = _to_blocks(x, block)
  m = jnp.asarray(matrix, x.dtype)
  blocks = jnp.einsum("ki,...aibjc->...akbjc", m, blocks, precision=_HIGHEST)
  blocks = jnp.einsum("lj,...akbjc->...akblc", m, blocks, precision=_HIGHEST)
  return blocks.reshape(x.shape)


@functools.partial(jax.jit, static_argnames="block")
def block_dct2(x: jax.Array, block: int = 8) -> jax.Array:
  """Orthonormal DCT-II of every non-overlapping block×block tile (JPEG / NatSR layout).

  Args:
    x: float (..., H, W, C) with H and W multiples of `block`.
    block: tile size (8 in NatSR).
  Returns:
    (..., H, W, C): tile (a, b) holds the coefficients of the same tile of `x`, DC at its top-left.
  """
  return _blockwise(x, dct_matrix(block), block)


@functools.partial(jax.jit, static_argnames="block")
def block_idct2(coeffs: jax.Array, block: int = 8) -> jax.Array:
  """Inverse of `block_dct2`."""
  return _blockwise(coeffs, dct_matrix(block).T, block)


def dct_basis(n: int) -> np.ndarray:
  """The n² orthonormal 2-D DCT basis images, float64 (n, n, n²).

  basis[i, j, k*n + l] = M[k, i] M[l, j] with M = dct_matrix(n): channel m = k·n + l is the
  inverse DCT of the one-hot coefficient (k, l), as in the MVA practical's `DCT_denoiser`.
  """
  m = dct_matrix(n)
  return np.einsum("ki,lj->ijkl", m, m).reshape(n, n, n * n)


def dct_conv_filters(n: int) -> np.ndarray:
  """Forward DCT as conv filters, HWIO (n, n, 1, n²), float32.

  A VALID cross-correlation (`jax.lax.conv_general_dilated`, Flax `Conv`) of a one-channel image
  with these filters gives, at output (i, j) and channel k·n + l, the DCT coefficient (k, l) of the
  n×n patch whose top-left corner is (i, j).
  """
  return dct_basis(n)[:, :, None, :].astype(np.float32)


def dct_inverse_conv_filters(n: int) -> np.ndarray:
  """Inverse DCT + scatter as conv filters, HWIO (n, n, n², 1), float32.

  A cross-correlation with padding n−1 of the (H−n+1, W−n+1, n²) coefficient map with these
  (spatially flipped) filters sums every patch's inverse DCT back at its location: an (H, W) image
  in which each pixel is the sum over the patches that cover it.
  """
  return dct_basis(n)[::-1, ::-1, :, None].astype(np.float32)

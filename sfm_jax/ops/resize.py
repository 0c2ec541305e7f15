"""MATLAB-compatible bicubic `imresize` (with antialiasing when downscaling).

The SR benchmarks' LR images (Set5, Set14, DIV2K "bicubic") were made with MATLAB's
`imresize(hr, 1/s, 'bicubic')`, and PIL / OpenCV / `jax.image.resize` differ from it at the
borders and in the kernel. This follows MATLAB's `contributions` routine: Keys cubic a = −0.5,
the kernel stretched by 1/scale when downscaling (antialias), weights normalised per output pixel,
and symmetric (half-sample) border mirroring. Each axis is a dense (out, in) matrix, so a resize is
two matmuls on device.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from sfm_jax.ops._checks import check_float_images

_HIGHEST = jax.lax.Precision.HIGHEST


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
  """Keys' cubic convolution kernel with parameter a (MATLAB/PIL −0.5, OpenCV −0.75)."""
  absx = np.abs(x)
  absx2, absx3 = absx**2, absx**3
  near = ((a + 2) * absx3 - (a + 3) * absx2 + 1) * (absx <= 1)
  far = (a * absx3 - 5 * a * absx2 + 8 * a * absx - 4 * a) * ((absx > 1) & (absx <= 2))
  return near + far


@functools.lru_cache(maxsize=128)
def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True,
                  a: float = -0.5, border: str = "mirror") -> np.ndarray:
  """Bicubic interpolation weights along one axis, float64 (out_len, in_len).

  The defaults are MATLAB's `imresize`; `antialias=False, a=-0.75, border="clamp"` gives
  OpenCV's `cv2.resize(..., INTER_CUBIC)` (used by the SFM authors to make training patches).

  Args:
    in_len, out_len: input and output lengths.
    scale: out/in scale factor as MATLAB uses it (for imresize(x, 1/4) this is 0.25 exactly).
    antialias: stretch the kernel when scale < 1 (MATLAB's default).
    a: the cubic kernel's parameter.
    border: "mirror" (half-sample symmetric, MATLAB) or "clamp" (replicate the edge pixel).
  """
  if scale < 1 and antialias:
    width = 4.0 / scale
    kernel = lambda x: scale * _cubic(scale * x, a)  # noqa: E731
  else:
    width = 4.0
    kernel = lambda x: _cubic(x, a)  # noqa: E731
  x = np.arange(1, out_len + 1, dtype=np.float64)
  u = x / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate of each output pixel
  left = np.floor(u - width / 2)
  taps = int(math.ceil(width)) + 2
  indices = left[:, None] + np.arange(taps)[None, :]  # 1-based, may fall outside [1, in_len]
  weights = kernel(u[:, None] - indices)
  weights /= weights.sum(axis=1, keepdims=True)
  if border == "mirror":
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    columns = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
  elif border == "clamp":
    columns = np.clip(indices.astype(np.int64) - 1, 0, in_len - 1)
  else:
    raise ValueError(f"border={border!r}; use 'mirror' (MATLAB) or 'clamp' (OpenCV).")
  matrix = np.zeros((out_len, in_len))
  np.add.at(matrix, (np.repeat(np.arange(out_len), taps), columns.ravel()), weights.ravel())
  return matrix


def _plan(in_len: int, scale: float | None, out_len: int | None) -> tuple[int, float]:
  if out_len is None:
    return int(math.ceil(in_len * scale)), float(scale)
  return int(out_len), float(scale) if scale is not None else out_len / in_len


@functools.partial(jax.jit, static_argnames=("scale", "output_size", "antialias"))
def imresize(images: jax.Array, scale: float | None = None,
             output_size: tuple[int, int] | None = None, antialias: bool = True) -> jax.Array:
  """MATLAB `imresize(images, scale, 'bicubic')` over the spatial axes of (..., H, W, C).

  Args:
    images: float (..., H, W, C), any range (no clipping or rounding: quantise afterwards with
      `jnp.round(jnp.clip(y, 0, 1) * 255) / 255` to mimic MATLAB's uint8 output).
    scale: factor for both axes, e.g. 1/4 or 2 (output size ceil(scale·size), as MATLAB).
    output_size: (H_out, W_out) instead of (or with) `scale`.
    antialias: MATLAB's 'Antialiasing' (default true) when downscaling.
  Returns:
    (..., H_out, W_out, C) resized images, same dtype.
  """
  check_float_images(images)
  if scale is None and output_size is None:
    raise ValueError("imresize needs scale= (e.g. 0.25) or output_size=(H, W).")
  if scale is not None and scale <= 0:
    raise ValueError(f"scale={scale} must be positive, e.g. 0.25 to downscale by 4.")
  height, width = images.shape[-3:-1]
  out_h, scale_h = _plan(height, scale, None if output_size is None else output_size[0])
  out_w, scale_w = _plan(width, scale, None if output_size is None else output_size[1])
  mh = jnp.asarray(resize_matrix(height, out_h, scale_h, antialias), images.dtype)
  mw = jnp.asarray(resize_matrix(width, out_w, scale_w, antialias), images.dtype)
  out = jnp.einsum("oh,...hwc->...owc", mh, images, precision=_HIGHEST)
  return jnp.einsum("pw,...owc->...opc", mw, out, precision=_HIGHEST)

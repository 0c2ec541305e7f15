"""Blur kernels and filtering of NHWC batches: Gaussian filter (scipy-compatible), isotropic and
anisotropic Gaussian kernels (IKC: 21×21, σ ∈ [0.2, 4]) and per-image, per-channel blur."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sfm_jax.ops._checks import check_batch, check_float_images, check_nonnegative, check_unit_range
from sfm_jax.ops._sharding import per_batch_shard
from sfm_jax.ops.resize import imresize

_HIGHEST = jax.lax.Precision.HIGHEST


def _gaussian_taps(sigma: float, truncate: float) -> np.ndarray:
  radius = int(truncate * float(sigma) + 0.5)
  x = np.arange(-radius, radius + 1, dtype=np.float64)
  taps = np.exp(-0.5 * (x / sigma) ** 2)
  return taps / taps.sum()


def _filter_axis(x: jax.Array, taps: np.ndarray, axis: int) -> jax.Array:
  """Correlates `x` with 1-D `taps` along `axis`, scipy mode 'reflect' (= numpy 'symmetric')."""
  radius = len(taps) // 2
  pad = [(0, 0)] * x.ndim
  pad[axis] = (radius, radius)
  padded = jnp.pad(x, pad, mode="symmetric")
  size = x.shape[axis]
  out = jnp.zeros_like(x)
  for offset, tap in enumerate(taps):
    out = out + float(tap) * jax.lax.slice_in_dim(padded, offset, offset + size, axis=axis)
  return out


@functools.partial(jax.jit, static_argnames=("sigma", "truncate"))
def gaussian_filter(x: jax.Array, sigma: float, truncate: float = 4.0) -> jax.Array:
  """`scipy.ndimage.gaussian_filter` over the spatial axes of (..., H, W, C), mode 'reflect'.

  Args:
    x: float (..., H, W, C).
    sigma: std in pixels (static; a Python float).
    truncate: the kernel radius is int(truncate·σ + 0.5), as in scipy.
  """
  check_float_images(x, "x")
  check_nonnegative(sigma, "sigma")
  if sigma == 0:
    return x
  taps = _gaussian_taps(sigma, truncate)
  return _filter_axis(_filter_axis(x, taps, x.ndim - 3), taps, x.ndim - 2)


def _kernel_grid(size: int) -> tuple[jax.Array, jax.Array]:
  if size % 2 != 1:
    raise ValueError(f"kernel size {size} is even; use an odd size such as 21 so it has a centre.")
  ax = jnp.arange(size, dtype=jnp.float32) - size // 2
  return jnp.meshgrid(ax, ax, indexing="xy")  # xx[i, j] = column offset, yy[i, j] = row offset


def gaussian_kernel(size: int, sigma) -> jax.Array:
  """Isotropic Gaussian kernel(s) on the grid −size//2 … size//2, normalised to sum 1.

  Args:
    size: odd kernel size (IKC: 21).
    sigma: std in pixels, scalar or (B,).
  Returns:
    float32 (size, size) or (B, size, size).
  """
  sigma = jnp.asarray(sigma, jnp.float32)
  return anisotropic_gaussian_kernel(size, sigma, sigma, jnp.zeros_like(sigma))


def anisotropic_gaussian_kernel(size: int, sigma_x, sigma_y, theta) -> jax.Array:
  """Gaussian kernel(s) with covariance R(θ) diag(σx², σy²) R(θ)ᵀ, normalised to sum 1.

  Args:
    size: odd kernel size.
    sigma_x, sigma_y: stds along the rotated axes (pixels), scalars or (B,).
    theta: rotation angle in radians (counter-clockwise from the column axis), scalar or (B,).
  Returns:
    float32 (size, size), or (B, size, size) for batched parameters.
  """
  xx, yy = _kernel_grid(size)
  sx, sy, th = (jnp.asarray(v, jnp.float32)[..., None, None] for v in (sigma_x, sigma_y, theta))
  cos, sin = jnp.cos(th), jnp.sin(th)
  u = cos * xx + sin * yy
  v = -sin * xx + cos * yy
  kernel = jnp.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
  return kernel / kernel.sum(axis=(-2, -1), keepdims=True)


def sample_gaussian_kernels(key: jax.Array, batch: int, size: int = 21,
                            sigma_range: tuple[float, float] = (0.2, 4.0)):
  """IKC's training blur: isotropic Gaussians with σ ~ U(sigma_range) per image.

  Returns (kernels (B, size, size), sigmas (B,)).
  """
  sigmas = jax.random.uniform(key, (batch,), minval=sigma_range[0], maxval=sigma_range[1])
  return gaussian_kernel(size, sigmas), sigmas


@functools.partial(jax.jit, static_argnames="padding")
def blur(images: jax.Array, kernels: jax.Array, padding: str = "reflect") -> jax.Array:
  """Convolves every channel of every image with its kernel (true convolution, same size).

  Args:
    images: float (B, H, W, C).
    kernels: (k, k) shared by the batch, or (B, k, k) one per image; k odd.
    padding: jnp.pad mode for the borders: "reflect" (PyTorch ReflectionPad2d, IKC; equals
      scipy.ndimage mode 'mirror'), "symmetric", "edge" or "constant" (zeros).
  Returns:
    (B, H, W, C) blurred images.
  """
  check_batch(images)
  batch = images.shape[0]
  if kernels.ndim == 2:
    kernels = jnp.broadcast_to(kernels, (batch, *kernels.shape))
  if kernels.ndim != 3 or kernels.shape[0] != batch or kernels.shape[1] % 2 == 0:
    raise ValueError(f"kernels shape {tuple(kernels.shape)} does not fit a batch of {batch}; "
                     "pass (k, k) or (B, k, k) with k odd.")
  if batch == 0:
    return images
  return per_batch_shard(functools.partial(_blur, padding=padding), images,
                         kernels.astype(images.dtype))


def _blur(images: jax.Array, kernels: jax.Array, padding: str) -> jax.Array:
  """`blur` of (B, H, W, C) images with (B, k, k) kernels on one device's batch."""
  batch, height, width, channels = images.shape
  r_h, r_w = kernels.shape[1] // 2, kernels.shape[2] // 2
  padded = jnp.pad(images, ((0, 0), (r_h, r_h), (r_w, r_w), (0, 0)), mode=padding)
  # Fold batch into channels so one grouped conv applies a different kernel to every (image, c).
  lhs = padded.transpose(1, 2, 0, 3).reshape(1, height + 2 * r_h, width + 2 * r_w, -1)
  rhs = jnp.repeat(kernels[:, ::-1, ::-1], channels, axis=0).transpose(1, 2, 0)[:, :, None, :]
  out = jax.lax.conv_general_dilated(
      lhs, rhs.astype(images.dtype), (1, 1), "VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=batch * channels, precision=_HIGHEST)
  return out.reshape(height, width, batch, channels).transpose(2, 0, 1, 3)


@functools.cache
def kernel_pca(size: int = 21, sigma_range: tuple[float, float] = (0.2, 4.0),
               components: int = 10, samples: int = 20_000) -> np.ndarray:
  """IKC's kernel PCA basis: the top principal directions of isotropic Gaussian kernels with σ
  spread evenly over `sigma_range` (a deterministic quadrature of IKC's random kernel set).

  Columns are orthonormal and sum to ~0 (directions of the centred kernels); each column's sign
  makes the code of the σ = 2.6 kernel (IKC's default) positive. With the defaults this
  reproduces the codes of IKC's released `pca_matrix.pth` (SFM `SR/IKC`) within ~0.005.

  Returns:
    float32 (size², components); code = kernel.reshape(-1) @ basis (see `kernel_codes`).
  """
  sigmas = np.linspace(sigma_range[0], sigma_range[1], samples)
  ax = np.arange(size) - size // 2
  squared = (ax[None, :] ** 2 + ax[:, None] ** 2).astype(np.float64)
  kernels = np.exp(-squared[None] / (2 * sigmas[:, None, None] ** 2))
  kernels = (kernels / kernels.sum(axis=(1, 2), keepdims=True)).reshape(samples, -1)
  centred = kernels - kernels.mean(axis=0)
  _, eigenvectors = np.linalg.eigh(centred.T @ centred)
  basis = eigenvectors[:, ::-1][:, :components]
  reference = np.exp(-squared / (2 * 2.6**2)).ravel()
  basis = basis * np.sign(reference @ basis)
  return basis.astype(np.float32)


def kernel_codes(kernels: jax.Array, basis: np.ndarray) -> jax.Array:
  """Kernel codes (IKC's "PCA code"): kernels (B, k, k) · basis (k², L) -> (B, L)."""
  flat = kernels.reshape(kernels.shape[0], -1)
  if flat.shape[1] != basis.shape[0]:
    raise ValueError(f"kernels of {kernels.shape[1:]} do not fit a PCA basis for "
                     f"{basis.shape[0]} pixels; build it with kernel_pca(size={kernels.shape[1]}).")
  return jnp.matmul(flat, jnp.asarray(basis), precision=_HIGHEST)


def gaussian_codes(sigmas, kernel_size: int = 21, code_len: int = 10) -> jax.Array:
  """Codes of isotropic Gaussian kernels: (B,) σ -> (B, code_len), on IKC's PCA basis (fitted
  to σ in [0.2, 4]; `kernel_pca`)."""
  kernels = gaussian_kernel(kernel_size, jnp.asarray(sigmas, jnp.float32))
  return kernel_codes(kernels, kernel_pca(kernel_size, (0.2, 4.0), code_len))


DOWNSAMPLERS = ("bicubic", "decimate")


def blur_downsample(hr: jax.Array, kernel: jax.Array, scale: int,
                    downsample: str = "bicubic") -> jax.Array:
  """HR (B, H, W, C) in [0, 1], H and W multiples of `scale` -> LR (B, H/s, W/s, C): blur with
  the (k, k) kernel (reflect borders), then MATLAB bicubic 1/s (`imresize`) or decimation
  (every s-th pixel)."""
  if downsample not in DOWNSAMPLERS:
    raise ValueError(f"downsample={downsample!r}; choose one of {DOWNSAMPLERS}.")
  check_unit_range(hr, "hr")
  blurred = blur(hr, kernel)
  if downsample == "decimate":
    return blurred[:, ::scale, ::scale]
  return imresize(blurred, scale=1.0 / scale)

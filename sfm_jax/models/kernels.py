"""Trainable blur kernels for kernel estimation through a frozen SR network (MVA DELIRES TP1,
balthazarneveu/MVA24-delire, question 11): the "trainable convolution blur K" of the TP's
`finding_blur_operator.png`.

The TP gives only the idea; the parametrisations are this port's choices (`docs/deviations.md`,
"Kernel estimation through a frozen SR network"):

- `GaussianKernel`: an isotropic Gaussian with one parameter, log σ (σ > 0 by construction), or
  with `anisotropic=True` log σx, log σy and the angle θ (`ops.anisotropic_gaussian_kernel`).
- `FreeKernel`: k×k free pixels through a softmax, so the kernel is non-negative and sums to 1
  by construction; the logits start at the Gaussian of `sigma` (0: uniform).

Both are called without inputs, `kernel_module() -> (size, size)` float32 summing to 1, take
`rngs` and `compute` only to fit the model registry (they draw nothing and have no conv or
BatchNorm), and report a σ (`.sigma`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from sfm_jax import ops
from sfm_jax.models.layers import PLAIN, Compute
from sfm_jax.models.registry import register


def _check(size: int, sigma: float, least: float):
  if size < 3 or size % 2 != 1:
    raise ValueError(f"kernel size={size}; use an odd size ≥ 3 (e.g. 21) so it has a centre.")
  if sigma < least:
    raise ValueError(f"kernel sigma={sigma}; use sigma > 0{' (0: uniform)' if least == 0 else ''}.")


def _spread(kernels: jax.Array) -> jax.Array:
  """√(½ Σ k·|r − centroid|²) of kernels (..., k, k) summing to 1, over the pixel grid."""
  ax = jnp.arange(kernels.shape[-1], dtype=jnp.float32) - kernels.shape[-1] // 2
  yy, xx = jnp.meshgrid(ax, ax, indexing="ij")
  moment = lambda f: jnp.sum(kernels * f, axis=(-2, -1), keepdims=True)  # noqa: E731
  my, mx = moment(yy), moment(xx)
  return jnp.sqrt(moment((yy - my) ** 2 + (xx - mx) ** 2) / 2)[..., 0, 0]


def kernel_sigma(kernel: jax.Array) -> jax.Array:
  """The σ of the isotropic Gaussian on the same grid (`ops.gaussian_kernel`) with the kernel's
  second moment: exactly the σ of such a kernel, sampling and truncation included (the plain
  moment √(½ Σ k·|r|²) is 1% low at σ = 0.6 and 0.3% low at σ = 3 on 21×21), an equivalent
  width for any other kernel (≈ √((σx² + σy²)/2) for an anisotropic Gaussian).

  kernel (k, k) non-negative, summing to 1 -> scalar in [0.1, k/2]."""
  size = kernel.shape[-1]
  sigmas = jnp.linspace(0.1, size / 2, 1024)
  return jnp.interp(_spread(kernel), _spread(ops.gaussian_kernel(size, sigmas)), sigmas)


@register("gaussian_kernel", role="kernel_estimator", protocol="kernel", channels=1)
class GaussianKernel(nnx.Module):
  """A Gaussian blur kernel with trainable log σ (or log σx, log σy and θ when anisotropic).

  Args:
    size: odd kernel size (the SR task blurs on 21×21).
    sigma: initial σ in pixels (> 0); anisotropic kernels start isotropic at θ = 0.
    anisotropic: learn σx, σy and the angle θ instead of one σ.
  """

  def __init__(self, size: int = 21, sigma: float = 1.0, anisotropic: bool = False, *,
               rngs: nnx.Rngs, compute: Compute = PLAIN):
    del rngs, compute  # nothing random, no conv
    _check(size, sigma, least=1e-6)
    self.size, self.anisotropic = size, anisotropic
    log_sigma = jnp.log(jnp.float32(sigma))
    self.log_sigma = nnx.Param(jnp.full((2,) if anisotropic else (), log_sigma))
    if anisotropic:
      self.theta = nnx.Param(jnp.zeros((), jnp.float32))

  @property
  def sigma(self) -> jax.Array:
    """σ (scalar); for an anisotropic kernel √(σx·σy), the σ of the isotropic Gaussian of the
    same area."""
    return jnp.exp(jnp.mean(self.log_sigma[...]))

  @property
  def sigmas(self) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(σx, σy, θ); σx = σy and θ = 0 for an isotropic kernel."""
    if not self.anisotropic:
      sigma = self.sigma
      return sigma, sigma, jnp.zeros_like(sigma)
    sigma_x, sigma_y = jnp.exp(self.log_sigma[...])
    return sigma_x, sigma_y, self.theta[...]

  def __call__(self) -> jax.Array:
    """-> the (size, size) kernel, float32, summing to 1."""
    if not self.anisotropic:
      return ops.gaussian_kernel(self.size, self.sigma)
    return ops.anisotropic_gaussian_kernel(self.size, *self.sigmas)


@register("free_kernel", role="kernel_estimator", protocol="kernel", channels=1)
class FreeKernel(nnx.Module):
  """A free k×k blur kernel: softmax over k×k logits (non-negative, sums to 1).

  Args:
    size: odd kernel size (13 or 15 suit ×2 blur kernels).
    sigma: the logits start as −r²/(2σ²), i.e. exactly the Gaussian of σ; 0 starts from the
      uniform (box) kernel.
  """

  def __init__(self, size: int = 13, sigma: float = 1.0, *, rngs: nnx.Rngs,
               compute: Compute = PLAIN):
    del rngs, compute  # nothing random, no conv
    _check(size, sigma, least=0.0)
    self.size = size
    ax = jnp.arange(size, dtype=jnp.float32) - size // 2
    squared = ax[:, None] ** 2 + ax[None, :] ** 2
    self.logits = nnx.Param(-squared / (2 * sigma**2) if sigma > 0 else jnp.zeros_like(squared))

  @property
  def sigma(self) -> jax.Array:
    """The σ of the Gaussian with the kernel's second moment (`kernel_sigma`)."""
    return kernel_sigma(self())

  def __call__(self) -> jax.Array:
    """-> the (size, size) kernel, float32, non-negative, summing to 1."""
    return jax.nn.softmax(self.logits[...].reshape(-1)).reshape(self.size, self.size)

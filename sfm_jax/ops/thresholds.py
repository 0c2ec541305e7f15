"""Thresholding functions of the MVA DCT-denoiser practical (balthazarneveu/MVA24-delire, TP1
report and `TP_1/hard_tresholding.ipynb`).

All are elementwise and differentiable almost everywhere in x; `differentiable_hard_threshold`
is also differentiable in the threshold T, so T can be learned. It tends to the hard threshold as
the temperature λ → 0 and to the soft threshold as λ → ∞.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def hard_threshold(x: jax.Array, threshold) -> jax.Array:
  """Zeroes coefficients with |x| < T, keeps the others (|x| = T is kept, as the template)."""
  return jnp.where(jnp.abs(x) < threshold, jnp.zeros_like(x), x)


def soft_threshold(x: jax.Array, threshold) -> jax.Array:
  """sign(x)·max(|x| − T, 0) = relu(x − T) − relu(−x − T)."""
  return jax.nn.relu(x - threshold) - jax.nn.relu(-x - threshold)


def _asymmetric(x, threshold, temperature):
  shifted = x - threshold
  return jax.nn.relu(shifted + threshold * jnp.tanh(shifted / temperature))


def differentiable_hard_threshold(x: jax.Array, threshold, temperature) -> jax.Array:
  """asym(x) − asym(−x) with asym(x) = relu((x − T) + T·tanh((x − T)/λ)).

  Args:
    x: coefficients, any shape.
    threshold: T ≥ 0 (scalar or broadcastable), learnable.
    temperature: λ > 0; the practical anneals it from 5 to 1e-3.
  """
  return (_asymmetric(x, threshold, temperature)
          - _asymmetric(-x, threshold, temperature))

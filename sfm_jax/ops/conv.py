"""`lax.conv_general_dilated` with a faster weight gradient on CPUs.

XLA:CPU computes a conv's weight gradient as a convolution over the batch with the activations
transposed to batch-minor layout: two 16 MB transposes and a slow kernel per 64-channel layer
of a 16×64×64 batch. `conv_general_dilated` below has the same forward and input gradient but,
on CPU only (`lax.platform_dependent`), takes the weight gradient of a stride-1 "same" conv as
one convolution over the batch folded into the rows:

  x (N, H, W, C) padded by p and folded to (C, N·(H+2p), W+2p, 1)   [the batch becomes rows]
  g (N, H, W, D) with 2p zero rows after each image, folded to (N·(H+2p) − 2p, W, 1, D)
  dW (k, k, C, D) = conv(x_folded, g_folded) rearranged

The zero rows keep each image's products apart, so the result equals XLA's own weight gradient
up to float summation order (~1e-6 relative). On a 2-core AVX-512 Xeon it takes the DnCNN-B
train step from 1.75 s to 1.58 s (`benchmarks/train_step.py`, YNNPACK on). GPUs keep lax's
gradient. A drop-in for `nnx.Conv(conv_general_dilated=...)`; any other conv (strided, dilated,
grouped, NCHW, asymmetric padding) is passed to lax unchanged.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1),
                                 out_spec=(0, 3, 1, 2))


def folded_weight_grad(x: jax.Array, g: jax.Array, kernel_size: int,
                       precision=None) -> jax.Array:
  """Weight gradient of a stride-1 "same" k×k conv, the batch folded into the rows.

  Args:
    x: (N, H, W, C) conv input.
    g: (N, H, W, D) gradient of the conv output.
    kernel_size: k, odd.
  Returns:
    (k, k, C, D) = Σ_{n,h,w} x_pad[n, h+i, w+j, c] · g[n, h, w, d].
  """
  n, h, w, c = x.shape
  p = kernel_size // 2
  rows = n * (h + 2 * p)
  x_folded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0))).reshape(rows, w + 2 * p, c)
  x_folded = x_folded.transpose(2, 0, 1)[..., None]  # (C, rows, W+2p, 1)
  g_folded = jnp.pad(g, ((0, 0), (0, 2 * p), (0, 0), (0, 0)))
  g_folded = g_folded.reshape(rows, w, 1, g.shape[-1])[:rows - 2 * p]  # (rows−2p, W, 1, D)
  dw = lax.conv_general_dilated(x_folded, g_folded, (1, 1), "VALID",
                                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                precision=precision)  # (C, k, k, D)
  return dw.transpose(1, 2, 0, 3)


def _is_same_stride1_nhwc(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                          dimension_numbers, feature_group_count, kwargs) -> bool:
  """Whether the fast weight gradient applies (and so the call is rewritten)."""
  if lhs.ndim != 4 or rhs.ndim != 4 or feature_group_count != 1:
    return False
  kh, kw = rhs.shape[:2]
  if kh != kw or kh % 2 == 0 or any(s != 1 for s in window_strides):
    return False
  if any(d != 1 for d in (lhs_dilation or (1, 1))) or any(d != 1 for d in (rhs_dilation or (1, 1))):
    return False
  if dimension_numbers not in (_NHWC, ("NHWC", "HWIO", "NHWC")):
    return False
  p = kh // 2
  if isinstance(padding, str):
    same = padding == "SAME"
  else:
    same = [tuple(pair) for pair in padding] == [(p, p), (p, p)]
  if not same or kwargs.get("preferred_element_type") is not None:
    return False
  return kwargs.get("out_sharding") is None


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, **kwargs):
  """`lax.conv_general_dilated`, with the folded weight gradient for stride-1 same NHWC convs."""
  if not _is_same_stride1_nhwc(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                               dimension_numbers, feature_group_count, kwargs):
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    precision=precision, **kwargs)
  return _same_conv(lhs, rhs, precision)


def _lax_same_conv(x, kernel, precision):
  p = kernel.shape[0] // 2
  return lax.conv_general_dilated(x, kernel, (1, 1), ((p, p), (p, p)),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _same_conv(x, kernel, precision):
  return _lax_same_conv(x, kernel, precision)


def _same_conv_fwd(x, kernel, precision):
  return _lax_same_conv(x, kernel, precision), (x, kernel)


def _same_conv_bwd(precision, residuals, g):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda x: _lax_same_conv(x, kernel, precision), x)
  (dx,) = input_vjp(g)

  def lax_weight_grad(x, g):
    _, weight_vjp = jax.vjp(lambda k: _lax_same_conv(x, k, precision), kernel)
    return weight_vjp(g)[0]

  dw = lax.platform_dependent(
      x, g, cpu=lambda x, g: folded_weight_grad(x, g, kernel.shape[0], precision),
      default=lax_weight_grad)
  return dx, dw.astype(kernel.dtype)


_same_conv.defvjp(_same_conv_fwd, _same_conv_bwd)

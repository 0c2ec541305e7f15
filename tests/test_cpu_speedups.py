"""The CPU training kernels change no result: the folded conv weight gradient, the one-pass
BatchNorm and the YNNPACK flag, each against an independent reference; models use them only
when built with compute=CPU_KERNELS."""

import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import jaxlib.version
import numpy as np
import pytest
from flax import nnx
from jax import lax

from sfm_jax import xla_cpu
from sfm_jax.models.layers import CPU_KERNELS, OnePassBatchNorm
from sfm_jax.ops.conv import conv_general_dilated, folded_weight_grad, lax_weight_grad


def _numpy_weight_grad(x, g, kernel):
  """Σ_{n,h,w} x_pad[n, h+i, w+j, c] g[n, h, w, d] in float64, a loop over the kh·kw offsets."""
  kh, kw = kernel
  h, w = x.shape[1:3]
  xp = np.pad(x.astype(np.float64), ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  return np.stack([[np.einsum("nhwc,nhwd->cd", xp[:, i:i + h, j:j + w], g) for j in range(kw)]
                   for i in range(kh)])


# C ≤ D transposes x, C > D transposes g (and flips the result): both orientations.
@pytest.mark.parametrize("kernel,c,d", [((3, 3), 8, 16), ((5, 5), 3, 4), ((1, 1), 4, 2),
                                         ((3, 7), 2, 3), ((3, 3), 6, 1), ((5, 3), 7, 7)])
def test_folded_weight_grad_matches_the_definition(kernel, c, d):
  rng = np.random.default_rng(c)
  x = rng.standard_normal((3, 10, 7, c)).astype(np.float32)
  g = rng.standard_normal((3, 10, 7, d)).astype(np.float32)
  grad = functools.partial(folded_weight_grad, kernel_shape=kernel)
  assert "cond" in _primitives(grad, x, g)  # the folding runs in the unfusable cond
  got = np.asarray(jax.jit(grad)(x, g))
  want = _numpy_weight_grad(x, g, kernel)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_lax_weight_grad_matches_the_definition():  # the accelerators' path, run on CPU here
  rng = np.random.default_rng(0)
  x = rng.standard_normal((3, 10, 7, 5)).astype(np.float32)
  g = rng.standard_normal((3, 10, 7, 2)).astype(np.float32)
  got = np.asarray(jax.jit(functools.partial(lax_weight_grad, kernel_shape=(3, 5)))(x, g))
  np.testing.assert_allclose(got, _numpy_weight_grad(x, g, (3, 5)), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("c,d", [(3, 4), (4, 3)])
def test_nan_at_the_cond_probe_spreads_as_in_the_definition(c, d):
  x = np.ones((2, 6, 5, c), np.float32)
  g = np.ones((2, 6, 5, d), np.float32)
  probed = x if c <= d else g  # the operand folded inside the cond; its first element decides
  probed[0, 0, 0, 0] = np.nan
  got = np.asarray(jax.jit(functools.partial(folded_weight_grad, kernel_shape=(3, 3)))(x, g))
  want = _numpy_weight_grad(x, g, (3, 3))
  assert np.isnan(want).any() and not np.isnan(want).all()
  np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
  np.testing.assert_allclose(got, want, rtol=1e-6)


def _primitives(fn, *args):
  return [eqn.primitive.name for eqn in jax.make_jaxpr(fn)(*args).eqns]


def _half_padding(w):
  return [(k // 2, k // 2) for k in w.shape[:2]]


def _lax_same(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), _half_padding(w),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("kernel", [(3, 3), (1, 5)])
def test_conv_gradients_equal_lax_gradients(kernel):
  key_x, key_w, key_g = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(key_x, (2, 9, 12, 5))
  w = jax.random.normal(key_w, (*kernel, 5, 6))
  g = jax.random.normal(key_g, (2, 9, 12, 6))
  dims = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))  # what nnx.Conv passes

  def ours(x, w):
    return conv_general_dilated(x, w, (1, 1), _half_padding(w), (1, 1), (1, 1), dims)

  assert _primitives(ours, x, w)[0] == "custom_vjp_call"  # the folded gradient is in use
  np.testing.assert_allclose(jax.jit(ours)(x, w), _lax_same(x, w), atol=1e-5)
  got = jax.jit(lambda x, w: jax.vjp(ours, x, w)[1](g))(x, w)
  want = jax.vjp(_lax_same, x, w)[1](g)
  for a, b in zip(got, want, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_other_convs_go_to_lax_unchanged():
  x = jax.random.normal(jax.random.key(1), (1, 8, 8, 3))
  layer = CPU_KERNELS.conv(3, 4, 3, stride=2, rngs=nnx.Rngs(0))
  assert layer.conv_general_dilated is conv_general_dilated  # ops.conv's, passing it to lax
  assert _primitives(layer, x)[0] == "conv_general_dilated"
  want = lax.conv_general_dilated(x, layer.kernel[...], (2, 2), ((1, 1), (1, 1)),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC")) + layer.bias[...]
  np.testing.assert_allclose(layer(x), want, atol=1e-6)


def test_batch_norm_matches_flax_in_training_and_evaluation():
  x = jax.random.normal(jax.random.key(2), (4, 6, 6, 8)) * 3 + 1
  ours = OnePassBatchNorm(8, momentum=0.9, epsilon=1e-5, rngs=nnx.Rngs(0))
  flax_bn = nnx.BatchNorm(8, momentum=0.9, epsilon=1e-5, rngs=nnx.Rngs(0))
  for bn in (ours, flax_bn):
    bn.scale[...] = jnp.linspace(0.5, 1.5, 8)
    bn.bias[...] = jnp.linspace(-1, 1, 8)
  np.testing.assert_allclose(ours(x), flax_bn(x), atol=1e-5)
  np.testing.assert_allclose(ours.mean[...], flax_bn.mean[...], atol=1e-6)
  np.testing.assert_allclose(ours.var[...], flax_bn.var[...], atol=1e-5)

  def grads(bn):
    return nnx.grad(lambda bn, x: jnp.sum(jnp.sin(bn(x))), argnums=(0, 1))(bn, x)

  (ours_params, ours_x), (flax_params, flax_x) = grads(ours), grads(flax_bn)
  np.testing.assert_allclose(ours_x, flax_x, atol=1e-4)
  np.testing.assert_allclose(ours_params.scale[...], flax_params.scale[...], rtol=1e-4)
  ours.eval()
  flax_bn.eval()
  np.testing.assert_allclose(ours(x), flax_bn(x), atol=1e-6)


@pytest.mark.parametrize("flags,version,opt_out,expect_added", [
    ("", (0, 10, 2), None, True),
    ("--xla_force_host_platform_device_count=4", (0, 10, 2), None, True),
    ("", (0, 9, 1), None, False),  # older jaxlib would abort on the unknown flag
    ("", (0, 10, 2), "0", False),
    (f"{xla_cpu.YNN_FLAG}=LIBRARY_FUSION_TYPE_DOT", (0, 10, 2), None, False),  # user's own
])
def test_ynn_flag_is_added_only_where_wanted(flags, version, opt_out, expect_added):
  result = xla_cpu.with_ynn_flag(flags, version, opt_out)
  assert result.startswith(flags)
  assert (xla_cpu.YNN_FUSIONS in result and result != flags) == expect_added
  assert result.count(xla_cpu.YNN_FLAG) <= 1


def test_enable_sets_the_flag_and_convolutions_stay_exact():
  script = """
import numpy as np
from sfm_jax import xla_cpu
on = xla_cpu.enable()
import jax, jax.numpy as jnp
from jax import lax
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 16, 16, 8)).astype(np.float32)
w = rng.standard_normal((3, 3, 8, 4)).astype(np.float32)
y = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
ref = sum(np.einsum("nhwc,cd->nhwd", xp[:, i:i + 16, j:j + 16], w[i, j])
          for i in range(3) for j in range(3))
print(on, float(np.abs(np.asarray(y) - ref).max() / np.abs(ref).max()))
"""
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_cpu.OPT_OUT)}
  out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       check=True).stdout.split()
  expected_on = xla_cpu.with_ynn_flag("", jaxlib.version.__version_info__) != ""
  assert out[0] == str(expected_on)
  assert float(out[1]) < 1e-5

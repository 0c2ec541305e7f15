"""Models are plain Flax by default (forward-mode autodiff works through every registered model)
and the CPU training kernels, chosen at construction (compute=CPU_KERNELS), change neither values
nor gradients."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_train import TINY

from sfm_jax.models import (
  BFLOAT16,
  CPU_KERNELS,
  PLAIN,
  REGISTRY,
  Compute,
  get_model,
  register,
)
from sfm_jax.models.discriminators import SNConv
from sfm_jax.models.layers import OnePassBatchNorm
from sfm_jax.ops import conv as cpu_conv

# Tiny constructor arguments: test_train's (the training configs' models), and here those of
# the critics, feature extractors and kernel modules.
KWARGS = {**TINY, "dct_denoiser": {"patch": 4, "learnable": True, "threshold": "soft"},
          "vgg_discriminator": {"nf": 4}, "natsr_discriminator": {"nf": 4},
          "vgg19_features": {}, "fca_fdc": {"nf": 4}, "fca_wavelet_d": {"nf": 4},
          "gaussian_kernel": {"size": 7}, "free_kernel": {"size": 7}}
# Input shapes; a (B,) noise level follows a denoiser's image, a (B, 10) kernel code is the
# second input of SFTMD and the Corrector.
SHAPES = {
    "dncnn": [(2, 16, 16, 1), (2,)], "memnet": [(2, 16, 16, 1), (2,)],
    "ridnet": [(1, 16, 16, 1), (1,)], "ffdnet": [(2, 16, 16, 1), (2,)],
    "n3net": [(1, 16, 16, 1), (1,)],
    "dct_denoiser": [(1, 16, 16, 1), (1,)], "unet": [(1, 32, 32, 1), (1,)],
    "rrdb": [(1, 6, 6, 1)], "rcan": [(1, 6, 6, 1)], "rdn": [(1, 6, 6, 3)], "frsr": [(1, 4, 4, 3)],
    "kmsr": [(1, 9, 9, 3)], "sftmd": [(1, 6, 6, 3), (1, 10)], "ikc_predictor": [(1, 8, 8, 3)],
    "ikc_corrector": [(1, 16, 16, 3), (1, 10)], "vgg_discriminator": [(1, 128, 128, 1)],
    "natsr_discriminator": [(1, 32, 32, 3)], "nmd": [(1, 32, 32, 3)],
    "vgg19_features": [(1, 16, 16, 3)], "fca_generator": [(1, 32, 32, 3)],
    "fca_fdc": [(1, 16, 16, 3), (1, 16, 16, 3)],
    "fca_wavelet_d": [(1, 128, 128, 3), (1, 128, 128, 3)],
    "gaussian_kernel": [], "free_kernel": [],
}


def test_every_registered_model_has_a_tiny_version():
  library = {name for name, r in REGISTRY.items() if r.cls.__module__.startswith("sfm_jax.")}
  assert set(SHAPES) == library and set(KWARGS) >= library


def inputs(shapes, seed=0):
  keys = jax.random.split(jax.random.key(seed), max(len(shapes), 1))
  return [jax.random.uniform(k, s, minval=0.05, maxval=0.3 if len(s) < 4 else 1.0)
          for k, s in zip(keys, shapes, strict=False)]


def as_function(model):
  """(f(params, *inputs) -> output, params): the model's output as a function of its Params."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  return (lambda params, *xs: nnx.merge(graphdef, params, rest)(*xs)), params


def directional_derivative(name, with_reverse: bool):
  """(<u, J·t> by jax.jvp, <Jᵀ·u, t> by jax.vjp or None) of the tiny model's output with
  respect to its parameters, for random tangents t and output cotangents u."""
  kwargs, shapes = KWARGS[name], SHAPES[name]
  model = get_model(name, **kwargs)
  model.eval()  # running statistics: the function has no side effects to trace
  f, params = as_function(model)
  xs = inputs(shapes)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(7), len(leaves))
  tangent = treedef.unflatten([jax.random.normal(k, x.shape)
                               for k, x in zip(keys, leaves, strict=True)])
  out, forward = jax.jit(lambda p, t: jax.jvp(lambda p: f(p, *xs), (p,), (t,)))(params, tangent)
  cotangent = jax.random.normal(jax.random.key(8), out.shape)
  through_jvp = float(jnp.vdot(cotangent, forward))
  if not with_reverse:
    return through_jvp, None
  (reverse,) = jax.jit(lambda p, u: jax.vjp(lambda p: f(p, *xs), p)[1](u))(params, cotangent)
  return through_jvp, sum(float(jnp.vdot(a, b)) for a, b in
                          zip(jax.tree.leaves(reverse), jax.tree.leaves(tangent), strict=True))


# Forward mode through all 23 models takes ~20 compilations (minutes here): the slow tier that
# .ci/run runs. By default, test_forward_mode_agrees_with_reverse_mode covers three families.
THREE_FAMILIES = ("dncnn", "rrdb", "fca_generator")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_jvp_through_every_model_on_the_default_path(name):
  through_jvp, _ = directional_derivative(name, with_reverse=False)
  assert np.isfinite(through_jvp) and through_jvp != 0.0


@pytest.mark.parametrize("name", THREE_FAMILIES)
def test_forward_mode_agrees_with_reverse_mode(name):
  """<u, J·t> (jax.jvp) = <Jᵀ·u, t> (jax.vjp): the plain layers' two modes are one derivative."""
  through_jvp, through_vjp = directional_derivative(name, with_reverse=True)
  np.testing.assert_allclose(through_jvp, through_vjp, rtol=1e-3)


def layers_of(model):
  """(every nnx.Conv, every SNConv, every nnx.BatchNorm) of `model`."""
  modules = [m for _, m in nnx.iter_modules(model)]
  return ([m for m in modules if isinstance(m, nnx.Conv)],
          [m for m in modules if isinstance(m, SNConv)],
          [m for m in modules if isinstance(m, nnx.BatchNorm)])


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_default_build_has_no_cpu_kernel_and_cpu_build_has_them(name):
  """get_model's default (PLAIN) is plain Flax in float32: no OnePassBatchNorm, every conv on
  lax.conv_general_dilated with Flax's default dtype. compute=CPU_KERNELS changes exactly the
  kernels (every BatchNorm one-pass; every conv but the TF-SAME strided ones, which lax runs
  either way, on ops.conv's), never a variable. Built abstractly (nnx.eval_shape): no values."""
  plain = nnx.eval_shape(lambda: get_model(name, **KWARGS[name]))
  convs, sn_convs, norms = layers_of(plain)
  assert all(c.conv_general_dilated is jax.lax.conv_general_dilated for c in convs)
  assert all(c.dtype is None for c in convs + sn_convs)
  assert all(type(n) is nnx.BatchNorm for n in norms)

  fast = nnx.eval_shape(lambda: get_model(name, compute=CPU_KERNELS, **KWARGS[name]))
  fast_convs, _, fast_norms = layers_of(fast)
  assert all(type(n) is OnePassBatchNorm for n in fast_norms)
  assert all(c.conv_general_dilated is cpu_conv.conv_general_dilated for c in fast_convs
             if c.padding != "SAME")
  assert (len(fast_convs), len(fast_norms)) == (len(convs), len(norms))
  assert (jax.tree.map(lambda x: (x.shape, x.dtype), nnx.state(fast))
          == jax.tree.map(lambda x: (x.shape, x.dtype), nnx.state(plain)))


@pytest.mark.parametrize("name", ["dncnn", "memnet", "fca_generator"])
def test_cpu_kernels_give_the_same_values_and_gradients(name):
  """A model built with compute=CPU_KERNELS (the folded weight gradient, one-pass BatchNorm)
  and given the default build's weights has its outputs and gradients, in training mode (batch
  statistics), for the loss Σ sin(model(x))."""
  kwargs, shapes = KWARGS[name], SHAPES[name]
  xs = inputs(shapes, seed=1)
  plain = get_model(name, seed=3, **kwargs)
  fast = get_model(name, seed=4, compute=CPU_KERNELS, **kwargs)
  nnx.update(fast, nnx.state(plain))  # the same weights, loaded as from a checkpoint

  def loss(model, xs):
    out = model(*xs)
    return jnp.sum(jnp.sin(out)), out

  results = []
  for model in (plain, fast):
    model.train()
    (value, out), grads = nnx.jit(nnx.value_and_grad(loss, has_aux=True))(model, xs)
    results.append((value, out, nnx.state(grads, nnx.Param), nnx.state(model, nnx.BatchStat)))
  (plain_loss, plain_out, plain_grads, plain_stats), (cpu_loss, cpu_out, cpu_grads, cpu_stats) = (
      results)
  np.testing.assert_allclose(cpu_out, plain_out, rtol=1e-5, atol=1e-6 * float(
      np.abs(plain_out).max()))
  np.testing.assert_allclose(cpu_loss, plain_loss, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(cpu_grads), jax.tree.leaves(plain_grads), strict=True):
    # float32 sums in another order: each entry within 1e-5 of its leaf's largest entry
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(np.abs(b).max()))
  for a, b in zip(jax.tree.leaves(cpu_stats), jax.tree.leaves(plain_stats), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_cpu_kernels_are_chosen_at_construction_only():
  plain = get_model("dncnn", num_layers=3, features=8)
  fast = get_model("dncnn", num_layers=3, features=8, compute=CPU_KERNELS)
  assert type(plain.body.norms[0]) is nnx.BatchNorm
  assert type(fast.body.norms[0]) is OnePassBatchNorm
  assert plain.body.convs[0].conv_general_dilated is jax.lax.conv_general_dilated
  assert fast.body.convs[0].conv_general_dilated is cpu_conv.conv_general_dilated
  # The same variables, and the same values from the same seed: weights move freely.
  same = jax.tree.map(np.array_equal, nnx.to_pure_dict(nnx.state(plain)),
                      nnx.to_pure_dict(nnx.state(fast)))
  assert all(jax.tree.leaves(same))


def test_compute_from_settings():
  assert Compute.from_settings() == PLAIN
  assert Compute.from_settings("float32", cpu_kernels=True) == CPU_KERNELS
  assert Compute.from_settings("bfloat16") == BFLOAT16
  both = Compute.from_settings("bfloat16", cpu_kernels=True)
  assert both == dataclasses.replace(CPU_KERNELS, dtype=jnp.bfloat16)
  with pytest.raises(ValueError, match="bfloat16"):
    Compute.from_settings("float16")


def test_a_model_without_compute_is_built_plain_and_refuses_a_dtype():
  """A user's registered model that takes no `compute`: the kernels are an optimisation it does
  without; a compute dtype it cannot honour is an error naming the fix."""

  @register("test_no_compute", role="denoiser", protocol="denoise")
  class NoCompute(nnx.Module):
    def __init__(self, channels: int = 1, *, rngs: nnx.Rngs):
      self.conv = nnx.Conv(channels, channels, (3, 3), rngs=rngs)

  try:
    model = get_model("test_no_compute", compute=CPU_KERNELS)
    assert model.conv.conv_general_dilated is jax.lax.conv_general_dilated
    with pytest.raises(ValueError, match="compute"):
      get_model("test_no_compute", compute=BFLOAT16)
  finally:
    del REGISTRY["test_no_compute"]

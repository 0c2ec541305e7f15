"""Mixed precision (train.compute_dtype="bfloat16"): every model family's train step convolves in
bf16 and keeps float32 weights, optimizer state and loss; training tracks float32 closely."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_adversarial import tiny_gan_config
from test_pure_models import KWARGS, SHAPES, inputs
from test_train import CONFIGS, load_config, provide_frozen_networks, shrink

from sfm_jax.data.images import load_source
from sfm_jax.models import BFLOAT16, Compute, get_model
from sfm_jax.train.loop import train_and_evaluate
from sfm_jax.train.setup import build_task, initial_state, training_step

# One config per network (the DCT denoiser's only convolutions are its frozen DCT transforms,
# which stay float32).
SINGLE_NETWORK = sorted({load_config(name).model.name: name
                         for name in [*CONFIGS, "nmd"] if name != "dct_denoiser"}.values())
WITH_CRITICS = ["esrgan_x4", "natsr_x4", "fca"]


def equations(jaxpr):
  """Every equation of a jaxpr, with those of the jaxprs nested in it (jit, custom_vjp, scan)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for inner in value if isinstance(value, list | tuple) else (value,):
        if isinstance(inner, jax.extend.core.ClosedJaxpr):
          yield from equations(inner.jaxpr)
        elif isinstance(inner, jax.extend.core.Jaxpr):
          yield from equations(inner)


def traced_step(config):
  """(jaxpr of one train step, the state before, the state and metrics after): traced only."""
  task = build_task(config)
  setup = initial_state(config, task)
  size, channels = config.data.patch_size, config.data.channels
  step, frozen = training_step(config, task, setup,
                               load_source(config.data.val_source, "val", channels))
  args = (setup.state, jax.ShapeDtypeStruct((4, size, size, channels), np.uint8), np.int32(0),
          frozen)
  return jax.make_jaxpr(step)(*args).jaxpr, setup.state, jax.eval_shape(step, *args)


def dtypes(tree):
  return jax.tree.map(lambda x: x.dtype, tree)


def check_bfloat16_step(config):
  config.train.compute_dtype = "bfloat16"
  jaxpr, before, (after, metrics) = traced_step(config)
  convs = [e for e in equations(jaxpr) if e.primitive.name == "conv_general_dilated"]
  assert "bfloat16" in {str(v.aval.dtype) for e in convs for v in e.invars}
  assert dtypes(after) == dtypes(before)
  assert not any(d == jnp.bfloat16 for d in jax.tree.leaves(dtypes(before)))
  assert metrics["loss"].dtype == jnp.float32


@pytest.mark.parametrize("name", SINGLE_NETWORK)
def test_every_config_convolves_in_bfloat16_and_keeps_float32_state(name, tiny_folder,
                                                                    tmp_path):
  config = shrink(load_config(name), tiny_folder)
  provide_frozen_networks(config, tmp_path)
  check_bfloat16_step(config)


@pytest.mark.parametrize("name", WITH_CRITICS)
def test_generator_and_critics_convolve_in_bfloat16(name, photo_folder, large_folder, tmp_path):
  check_bfloat16_step(tiny_gan_config(name, large_folder if name == "fca" else photo_folder,
                                      tmp_path))


def test_float32_is_flax_default_and_bfloat16_changes_no_weight():
  """compute=BFLOAT16 builds the same float32 weights as the default (the same values from the
  same seed) and computes in bf16 within its rounding; "float32" is Flax's default itself."""
  kwargs = {"nb": 1, "nf": 8, "gc": 4, "scale": 2}
  model = get_model("rrdb", **kwargs)
  low = get_model("rrdb", compute=BFLOAT16, **kwargs)
  same = jax.tree.map(np.array_equal, nnx.to_pure_dict(nnx.state(low)),
                      nnx.to_pure_dict(nnx.state(model)))
  assert all(jax.tree.leaves(same))
  x = jax.random.uniform(jax.random.key(0), (1, 12, 12, 1))
  reference = model(x)
  out = low(x)
  assert reference.dtype == jnp.float32 and out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32), reference, atol=0.03)
  full = get_model("rrdb", compute=Compute.from_settings("float32"), **kwargs)
  np.testing.assert_array_equal(full(x), reference)


# Convolutions that are no layer of the model and stay float32: the FCA generator's blur by its
# estimated kernel, the DCT denoiser's frozen transforms.
NOT_LAYERS = {"fca_generator": 1, "dct_denoiser": 2}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_model_built_in_bfloat16_convolves_in_bfloat16_with_float32_params(name):
  """Every registered model built with compute=BFLOAT16: each conv of its layers takes bf16
  operands in the forward pass (training mode), its parameters stay float32. Traced only."""
  model = nnx.eval_shape(lambda: get_model(name, compute=BFLOAT16, **KWARGS[name]))
  model.train()
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  graphdef, state = nnx.split(model)
  jaxpr = jax.make_jaxpr(lambda s, *xs: nnx.merge(graphdef, s)(*xs))(state, *inputs(SHAPES[name]))
  convs = [e for e in equations(jaxpr.jaxpr) if e.primitive.name == "conv_general_dilated"]
  low = [e for e in convs if all(v.aval.dtype == jnp.bfloat16 for v in e.invars)]
  assert len(low) == len(convs) - NOT_LAYERS.get(name, 0)


def test_bfloat16_training_follows_float32(tiny_folder, tmp_path):
  def run(dtype):
    config = shrink(load_config("quickstart"), tiny_folder, steps=8)
    config.train.compute_dtype = dtype
    return train_and_evaluate(config, str(tmp_path / dtype))

  full, half = run("float32"), run("bfloat16")
  np.testing.assert_allclose([l for _, l in half["losses"]], [l for _, l in full["losses"]],
                             rtol=0.05)
  assert abs(half["psnr"] - full["psnr"]) < 0.1  # validation runs in float32 for both


def test_eval_runs_in_bfloat16_only_when_asked(tiny_folder, tmp_path):
  """eval.py's --config.eval.compute_dtype: float32 by default, bf16 when asked (PSNR within
  rounding of float32, not equal to it)."""
  import ml_collections

  from sfm_jax import eval_config
  from sfm_jax.evaluation.runs import evaluate
  from sfm_jax.weights import save_weights

  kwargs = {"channels": 1, "num_layers": 3, "features": 8}
  save_weights(tmp_path / "w.msgpack", get_model("dncnn", **kwargs), "dncnn", kwargs)

  def psnr(overrides):
    config = eval_config.get_config()
    config.eval.sigmas = (25,)
    for key, value in overrides.items():
      config.eval[key.removeprefix("eval.")] = value
    summary = evaluate(ml_collections.ConfigDict(config), given_config=False,
                       overrides={"eval.sigmas": (25,), **overrides},
                       weights=str(tmp_path / "w.msgpack"), dataset=str(tiny_folder),
                       output=tmp_path / str(len(overrides)))
    return next(iter(summary.values()))["psnr"]  # the one σ

  full, half = psnr({}), psnr({"eval.compute_dtype": "bfloat16"})
  assert full != half and abs(full - half) < 0.1

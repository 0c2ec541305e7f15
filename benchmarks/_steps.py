"""The trainer's own jitted train step of a config, as benchmarks time it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def jitted_train_step(config, cpu_kernels: bool | None = None, out_shardings=None):
  """(step, initial state, frozen inputs) of `config`: `train.setup.training_step` jitted with
  the state donated, as `train.py` runs it; `cpu_kernels` defaults to the loop's choice."""
  from sfm_jax.train.setup import build_task, initial_state, training_step, use_cpu_kernels

  task = build_task(config)
  kernels = use_cpu_kernels(config) if cpu_kernels is None else cpu_kernels
  setup = initial_state(config, task, cpu_kernels=kernels)
  step, frozen = training_step(config, task, setup)
  return jax.jit(step, donate_argnums=0, out_shardings=out_shardings), setup.state, frozen


def train_step_closure(config, cpu_kernels: bool | None = None, count_flops: bool = True):
  """(a closure running one train step of `config` on a fixed random uint8 batch, the step's
  FLOPs by XLA's count, or None when unknown or not `count_flops`)."""
  step, state, frozen = jitted_train_step(config, cpu_kernels)
  size, batch = config.data.patch_size, config.train.batch_size
  patches = jnp.asarray(np.random.default_rng(0).integers(
      0, 256, (batch, size, size, config.data.channels)), jnp.uint8)
  holder = {"state": state, "step": 0}
  flops = compiled_flops(step, state, patches, jnp.int32(0), frozen) if count_flops else None

  def run():
    holder["state"], metrics = step(holder["state"], patches, jnp.int32(holder["step"]), frozen)
    holder["step"] += 1
    return jax.block_until_ready(metrics["loss"])

  return run, flops


def compiled_flops(fn, *args) -> float | None:
  """XLA's count of the floating-point operations of jitted `fn` on `args` (None if unknown)."""
  analysis = fn.lower(*args).compile().cost_analysis()
  analysis = analysis[0] if isinstance(analysis, list) else analysis
  return (analysis or {}).get("flops")

"""First-call compile time and steady-state speed of `ops.apply_sfm`, against the dispatch it
replaced (one `lax.switch` branch per 1/16 of the batch: 17 transform sizes to compile), rebuilt
here from the same DCT kernel. Both run in this process on the same batches.

  python benchmarks/sfm_compile.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from _machine import machine_line  # this folder is on sys.path when run as a script

from sfm_jax import ops, xla_cpu
from sfm_jax.ops.dct import filter_dct
from sfm_jax.ops.masks import sample_masks

SHAPES = [(128, 64, 64, 1), (16, 128, 128, 3)]


def _switch_on_masked_images(x, masks):
  """The previous dispatch: sort the selected images first, then run the branch for the
  smallest of the 17 static sub-batch sizes (0 and every 1/16 of B) that holds them."""
  masks = masks.astype(x.dtype)
  flat = masks.reshape(masks.shape[0], -1)
  active = flat.min(axis=1) != flat.max(axis=1)
  out = x * masks[:, :1, :1, None]
  order = jnp.argsort(~active, stable=True)
  capacities = sorted({0} | {max(1, math.ceil(x.shape[0] * k / 16)) for k in range(1, 17)})

  def branch(capacity):
    def run():
      if capacity == 0:
        return out
      idx = order[:capacity]
      done = filter_dct(x[idx], masks[idx])
      return out.at[idx].set(jnp.where(active[idx][:, None, None, None], done, out[idx]))
    return run

  index = jnp.searchsorted(jnp.asarray(capacities), active.sum())
  return jax.lax.switch(index, [branch(c) for c in capacities])


@jax.jit
def previous_apply_sfm(key, images):
  """apply_sfm(rate 0.5, targeted 0.85 / 0.15) with the previous dispatch."""
  batch, height, width, _ = images.shape
  select_key, mask_key = jax.random.split(key)
  selected = jax.random.bernoulli(select_key, 0.5, (batch,))
  band = sample_masks(mask_key, batch, height, width, mode="targeted", radius_perc=0.85,
                      sigma_perc=0.15, keep_prob=0.5)
  masks = jnp.where(selected[:, None, None], band, 1.0)
  return _switch_on_masked_images(images, masks), masks


current_apply_sfm = jax.jit(functools.partial(ops.apply_sfm, rate=0.5, mode="targeted",
                                              radius_perc=0.85, sigma_perc=0.15))


def compile_seconds(fn, key, x) -> float:
  start = time.perf_counter()
  fn.lower(key, x).compile()
  return time.perf_counter() - start


def median_seconds(fn, x, repeats) -> float:
  keys = jax.random.split(jax.random.key(1), repeats + 1)
  jax.block_until_ready(fn(keys[-1], x))
  times = []
  for key in keys[:-1]:
    start = time.perf_counter()
    jax.block_until_ready(fn(key, x))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=50)
  args = parser.parse_args()
  xla_cpu.enable()  # before JAX starts; SFM_JAX_YNNPACK=0 for XLA's own kernels
  print(machine_line())
  print(f"{'batch (B,H,W,C)':<18}{'compile: previous':>19}{'now':>8}{'ratio':>7}"
        f"{'   step: previous':>18}{'now':>9}{'ratio':>7}")
  key = jax.random.key(0)
  for shape in SHAPES:
    x = jnp.asarray(np.random.default_rng(0).random(shape, dtype=np.float32))
    compiles = [compile_seconds(fn, key, x) for fn in (previous_apply_sfm, current_apply_sfm)]
    steps = [median_seconds(fn, x, args.repeats) for fn in (previous_apply_sfm, current_apply_sfm)]
    print(f"{str(shape):<18}{compiles[0]:>17.2f} s{compiles[1]:>6.2f} s"
          f"{compiles[1] / compiles[0]:>7.2f}{steps[0] * 1e3:>15.2f} ms{steps[1] * 1e3:>6.2f} ms"
          f"{steps[1] / steps[0]:>7.2f}")


if __name__ == "__main__":
  main()

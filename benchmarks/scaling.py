"""Data-parallel scaling of the DnCNN-B train step over 1, 2 and 4 devices.

On a CPU the devices are forced (XLA_FLAGS=--xla_force_host_platform_device_count=N) and share
the same cores, so this measures the cost of sharding (collectives for the gradients and the
global BatchNorm statistics, per-device dispatch) at a fixed global batch, not a speed-up; on
a multi-GPU host pass --real to run once on all the visible accelerators. Each device count
runs in its own child process; the table gives the median step time and its ratio to one
device.

  python benchmarks/scaling.py [--devices 1,2,4] [--batch 32] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

from sfm_jax import xla_cpu


def child(batch: int, repeats: int) -> dict:
  import time

  import jax
  import jax.numpy as jnp
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P
  from train_step import dncnn_train_step  # this folder is on sys.path when run as a script

  mesh = jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
  step_fn, state, frozen_state = dncnn_train_step(batch, out_shardings=(replicated, replicated))
  state = jax.device_put(state, replicated)
  patches = jax.device_put(
      jnp.asarray(np.random.default_rng(0).integers(0, 256, (batch, 64, 64, 1)), jnp.uint8),
      sharded)
  times = []
  for step in range(repeats + 2):
    start = time.perf_counter()
    state, metrics = step_fn(state, patches, jnp.int32(step), frozen_state)
    jax.block_until_ready(metrics["loss"])
    times.append(time.perf_counter() - start)
  return {"seconds": float(np.median(times[2:])), "devices": jax.device_count()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--devices", default="1,2,4")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--real", action="store_true", help="use the visible accelerators")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  xla_cpu.enable()  # before JAX starts; SFM_JAX_YNNPACK=0 for XLA's own kernels
  if args.child:
    print(json.dumps(child(args.batch, args.repeats)))
    return
  print(f"DnCNN-B train step, global batch {args.batch}, 64×64; median of {args.repeats} steps")
  print(f"{'devices':>8}{'step':>12}{'vs 1':>8}")
  base = None
  counts = [None] if args.real else [int(d) for d in args.devices.split(",")]
  for count in counts:
    env = dict(os.environ)
    if count is not None:
      env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                          f" --xla_force_host_platform_device_count={count}").strip()
      env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run([sys.executable, __file__, "--child", "--batch", str(args.batch),
                          "--repeats", str(args.repeats)], env=env, capture_output=True,
                         text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    base = base or result["seconds"]
    seconds = result["seconds"]
    print(f"{result['devices']:>8}{seconds * 1e3:>9.1f} ms{seconds / base:>8.2f}", flush=True)


if __name__ == "__main__":
  main()

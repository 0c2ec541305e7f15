"""Full-image inference: sfm-jax (jitted, eval mode) vs the same network in PyTorch, with peak
memory.

Networks: DnCNN-B and MemNet on gray images of 481×321 (BSD68) and 1024×1024; RRDBNet ×4 (gray,
the SFM layout) producing those sizes from LR inputs a quarter the side. The PyTorch networks
(`tests/torch_nets.py`) are rewritten after the original code. Every (framework, network, size)
runs in its own child process, so its peak resident memory (ru_maxrss, weights and runtime
included) is its own; time is the median of --repeats calls after a warm-up (compilation
excluded). Ratios are ours / PyTorch (< 1: faster, smaller).

  python benchmarks/inference.py [--repeats 5] [--models dncnn,memnet,rrdb] [--sizes 481x321]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np
from _machine import machine_line  # this folder is on sys.path when run as a script

from sfm_jax import xla_cpu

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCALE = {"dncnn": 1, "memnet": 1, "rrdb": 4}


def _timed(fn, repeats: int) -> float:
  fn()  # warm-up (and compilation)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def _torch_call(model: str, x: np.ndarray):
  import torch

  sys.path.insert(0, str(ROOT / "tests"))
  from torch_nets import DnCNN_RL, MemNet, RRDBNetSFM

  torch.set_num_threads(os.cpu_count())
  net = {"dncnn": DnCNN_RL, "memnet": MemNet, "rrdb": RRDBNetSFM}[model]().eval()
  inputs = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())

  def call():
    with torch.inference_mode():
      return net(inputs)

  return call


def _jax_call(model: str, x: np.ndarray):
  import jax
  import jax.numpy as jnp

  from sfm_jax.inference import make_apply
  from sfm_jax.models import get_model

  apply = make_apply(get_model(model, channels=1))
  inputs = jnp.asarray(x)
  return lambda: jax.block_until_ready(apply(inputs))


def child(framework: str, model: str, height: int, width: int, repeats: int) -> dict:
  """Runs in the child process: one measurement, returned as a dict."""
  scale = SCALE[model]
  x = np.random.default_rng(0).random((1, height // scale, width // scale, 1), np.float32)
  call = (_torch_call if framework == "torch" else _jax_call)(model, x)
  seconds = _timed(call, repeats)
  peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return {"seconds": seconds, "peak_mib": peak_mib}


def measure(framework: str, model: str, size: tuple[int, int], repeats: int) -> dict:
  out = subprocess.run(
      [sys.executable, __file__, "--child", framework, model, f"{size[0]}x{size[1]}",
       "--repeats", str(repeats)], capture_output=True, text=True, check=True, cwd=ROOT)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--models", default="dncnn,memnet,rrdb")
  parser.add_argument("--sizes", default="481x321,1024x1024", help="output W×H list")
  parser.add_argument("--child", nargs=3, metavar=("FRAMEWORK", "MODEL", "SIZE"),
                      help=argparse.SUPPRESS)
  args = parser.parse_args()
  ynnpack = xla_cpu.enable()  # before JAX starts; SFM_JAX_YNNPACK=0 for XLA's own kernels
  if args.child:
    framework, model, size = args.child
    width, height = (int(v) for v in size.split("x"))
    print(json.dumps(child(framework, model, height, width, args.repeats)))
    return
  import torch

  print(f"{machine_line()}; XLA:CPU YNNPACK {'on' if ynnpack else 'off'}; "
        f"torch {torch.__version__}; median of {args.repeats} calls")
  print(f"{'network':<8}{'output':>11}{'PyTorch':>11}{'sfm-jax':>11}{'ratio':>7}"
        f"{'PyTorch peak':>14}{'sfm-jax peak':>14}{'ratio':>7}")
  for model in args.models.split(","):
    for size in args.sizes.split(","):
      width, height = (int(v) for v in size.split("x"))
      ref, ours = (measure(f, model, (width, height), args.repeats) for f in ("torch", "jax"))
      print(f"{model:<8}{size:>11}{ref['seconds'] * 1e3:>8.0f} ms{ours['seconds'] * 1e3:>8.0f} ms"
            f"{ours['seconds'] / ref['seconds']:>7.2f}{ref['peak_mib']:>10.0f} MiB"
            f"{ours['peak_mib']:>10.0f} MiB{ours['peak_mib'] / ref['peak_mib']:>7.2f}", flush=True)


if __name__ == "__main__":
  main()

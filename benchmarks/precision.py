"""bfloat16 against float32 training: the quickstart's validation PSNR and the train step's time.

Trains configs/quickstart.py (DnCNN 7×32 on the bundled photos, 400 steps) for each seed with
train.compute_dtype "float32", with "bfloat16", and as a float32 control that only rounds in
another order (the other train.cpu_kernels setting), validating all in float32 (σ = 25 on
camera, moon and clock). A single short run is chaotic: any rounding change moves its final PSNR
by tenths of a dB, so the control gives the size of that noise for bfloat16's gap to be read
against. Then times the float32 and bfloat16 train steps side by side (alternating blocks,
`sfm_ops.blocked_medians`) at the quickstart's batch and at DnCNN-B's.

  python benchmarks/precision.py [--seeds 0] [--steps 400] [--repeats 20]
                                 [--networks quickstart,dncnn_b]
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import tempfile

import numpy as np
from _machine import machine_line  # this folder is on sys.path when run as a script

from sfm_jax import xla_cpu

ROOT = pathlib.Path(__file__).resolve().parents[1]
DTYPES = ("float32", "bfloat16")


ARMS = ("float32", "bfloat16", "control")


def train_psnr(seed: int, steps: int, arm: str) -> float:
  """The quickstart's final validation PSNR for `arm`: float32, bfloat16, or the float32 control
  (the CPU kernels switched from what train.cpu_kernels="auto" picks)."""
  from sfm_jax.train.loop import train_and_evaluate
  from sfm_jax.train.setup import use_cpu_kernels

  config = quickstart(seed, steps, "bfloat16" if arm == "bfloat16" else "float32")
  if arm == "control":
    config.train.cpu_kernels = "off" if use_cpu_kernels(config) else "on"
  with tempfile.TemporaryDirectory() as workdir:
    return train_and_evaluate(config, workdir)["psnr"]


def quickstart(seed: int, steps: int, dtype: str):
  spec = importlib.util.spec_from_file_location("quickstart", ROOT / "configs/quickstart.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.seed, config.train.steps, config.train.compute_dtype = seed, steps, dtype
  config.train.eval_every = config.train.checkpoint_every = steps
  config.train.require_improvement = False  # a short run's PSNR is still a figure
  return config


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--steps", type=int, default=400)
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--networks", default="quickstart,dncnn_b")
  args = parser.parse_args()
  xla_cpu.enable()
  from _steps import train_step_closure  # these import JAX: after xla_cpu.enable()
  from sfm_ops import blocked_medians

  from sfm_jax.config_base import denoising_config

  print(machine_line())
  print(f"\nquickstart, {args.steps} steps; validation PSNR at σ=25 (float32 evaluation). "
        "Control: float32 with the other CPU-kernel setting (train.cpu_kernels), the same "
        "arithmetic rounded in another order")
  print(f"{'seed':>5}{'float32':>10}{'bfloat16':>10}{'control':>10}{'bf16 − f32':>12}"
        f"{'control − f32':>15}")
  gaps = {"bfloat16": [], "control": []}
  for seed in (int(s) for s in args.seeds.split(",")):
    psnr = {arm: train_psnr(seed, args.steps, arm) for arm in ARMS}
    for arm in gaps:
      gaps[arm].append(psnr[arm] - psnr["float32"])
    print(f"{seed:>5}" + "".join(f"{psnr[arm]:>7.2f} dB" for arm in ARMS)
          + f"{gaps['bfloat16'][-1]:>+9.2f} dB{gaps['control'][-1]:>+12.2f} dB", flush=True)
  print(f"{'mean':>5}{'':>30}{np.mean(gaps['bfloat16']):>+9.2f} dB"
        f"{np.mean(gaps['control']):>+12.2f} dB")
  print(f"{'|gap|':>5}{'':>30}{np.mean(np.abs(gaps['bfloat16'])):>9.2f} dB"
        f"{np.mean(np.abs(gaps['control'])):>12.2f} dB")

  print(f"\ntrain step, medians over {args.repeats} steps")
  print(f"{'network':<24}{'batch':>6}{'float32':>11}{'bfloat16':>11}{'bf16/f32':>10}")
  dncnn_b = denoising_config()
  dncnn_b.data.patch_size = 64
  networks = {"quickstart": ("quickstart DnCNN 7×32", quickstart(0, 1, "float32")),
              "dncnn_b": ("DnCNN-B 17×64", dncnn_b)}
  for name, config in (networks[n] for n in args.networks.split(",")):
    closures = []
    for dtype in DTYPES:
      config.train.compute_dtype = dtype
      closures.append(train_step_closure(config)[0])
    full, half = blocked_medians(closures, args.repeats)
    print(f"{name:<24}{config.train.batch_size:>6}{full * 1e3:>8.1f} ms{half * 1e3:>8.1f} ms"
          f"{half / full:>10.2f}", flush=True)


if __name__ == "__main__":
  main()

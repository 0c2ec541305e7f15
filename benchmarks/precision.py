"""bfloat16 against float32 training: the quickstart's validation PSNR and the train step's time.

Trains configs/quickstart.py (DnCNN 7×32 on the bundled photos, 400 steps) once with
train.compute_dtype "float32" and once with "bfloat16" for each seed, validating both in float32
(σ = 25 on camera, moon and clock), then times the two jitted train steps side by side
(alternating blocks, `sfm_ops.blocked_medians`) at the quickstart's batch and at DnCNN-B's.

  python benchmarks/precision.py [--seeds 0] [--steps 400] [--repeats 20]
                                 [--networks quickstart,dncnn_b]
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import tempfile

from _machine import machine_line  # this folder is on sys.path when run as a script

from sfm_jax import xla_cpu

ROOT = pathlib.Path(__file__).resolve().parents[1]
DTYPES = ("float32", "bfloat16")


def quickstart(seed: int, steps: int, dtype: str):
  spec = importlib.util.spec_from_file_location("quickstart", ROOT / "configs/quickstart.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.seed, config.train.steps, config.train.compute_dtype = seed, steps, dtype
  config.train.eval_every = config.train.checkpoint_every = steps
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
  from sfm_jax.train.loop import train_and_evaluate

  print(machine_line())
  print(f"\nquickstart, {args.steps} steps; validation PSNR at σ=25 (float32 evaluation)")
  print(f"{'seed':>5}{'float32':>10}{'bfloat16':>10}{'difference':>12}")
  for seed in (int(s) for s in args.seeds.split(",")):
    psnr = {}
    for dtype in DTYPES:
      with tempfile.TemporaryDirectory() as workdir:
        psnr[dtype] = train_and_evaluate(quickstart(seed, args.steps, dtype), workdir)["psnr"]
    print(f"{seed:>5}{psnr['float32']:>7.2f} dB{psnr['bfloat16']:>7.2f} dB"
          f"{psnr['bfloat16'] - psnr['float32']:>+9.2f} dB", flush=True)

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

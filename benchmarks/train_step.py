"""DnCNN-B training step: sfm-jax's jitted step vs the same step in PyTorch, side by side.

Both steps do the same work on 64×64 gray patches: blind noise σ ~ U(0, 55) per image drawn on
the device, DnCNN-B (17 layers, BatchNorm in training mode), the SFM loss
Σ((noisy − output) − noise)² / 2B, backward and one Adam update. The PyTorch network is
SFM's DnCNN, rewritten after the original code in `tests/torch_nets.py`. Both use every core
of this machine; the script alternates blocks of steps of the two and prints medians and the
ratio (ours / PyTorch; < 1 is faster).

  python benchmarks/train_step.py [--batches 16,128] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

from _machine import machine_line  # this folder is on sys.path when run as a script
from _steps import jitted_train_step, train_step_closure
from sfm_ops import blocked_medians  # this folder is on sys.path when run as a script

from sfm_jax import xla_cpu

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))


def torch_step_fn(batch: int, size: int = 64, freeze_conv_weights: bool = False):
  """A closure running one PyTorch DnCNN-B train step on a fixed clean batch.

  freeze_conv_weights: no gradient for the conv weights (an ablation, timing only)."""
  import torch
  from torch_nets import DnCNN

  net = DnCNN().train()
  for layer in net.dncnn:
    if freeze_conv_weights and isinstance(layer, torch.nn.Conv2d):
      layer.weight.requires_grad_(False)
  optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
  clean = torch.rand(batch, 1, size, size)

  def step():
    sigma = torch.rand(batch, 1, 1, 1) * (55 / 255)
    noise = torch.randn_like(clean) * sigma
    residual = net(clean + noise)  # DnCNN_RL returns noisy − residual
    loss = ((residual - noise) ** 2).sum() / (2 * batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss

  return step


def dncnn_config(batch: int, size: int = 64, sfm_rate: float = 0.0):
  """DnCNN-B in SFM's denoising recipe at `batch` × size² (SFM as released, targeted 0.85/0.15,
  at `sfm_rate`)."""
  from sfm_jax.config_base import denoising_config

  config = denoising_config()
  config.train.batch_size, config.data.patch_size = batch, size
  config.task.sfm_rate = sfm_rate
  return config


def dncnn_train_step(batch: int, sfm_rate: float = 0.0, out_shardings=None):
  """The trainer's own jitted DnCNN-B step with the CPU kernels, and its initial arguments:
  returns (step_fn, state, frozen_state)."""
  return jitted_train_step(dncnn_config(batch, sfm_rate=sfm_rate), cpu_kernels=True,
                           out_shardings=out_shardings)


def jax_step_fn(batch: int, size: int = 64, sfm_rate: float = 0.0):
  """A closure running one sfm-jax DnCNN-B train step (`dncnn_train_step`)."""
  step, _ = train_step_closure(dncnn_config(batch, size, sfm_rate), cpu_kernels=True,
                               count_flops=False)
  return step


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batches", default="16,128")
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args()
  ynnpack = xla_cpu.enable()  # before JAX starts; SFM_JAX_YNNPACK=0 for XLA's own kernels
  import torch

  torch.set_num_threads(os.cpu_count())
  print(f"{machine_line()}; XLA:CPU YNNPACK {'on' if ynnpack else 'off'}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
  print(f"DnCNN-B train step, 64×64 gray, Adam, BN; medians over {args.repeats} steps; "
        "'+ SFM': the same sfm-jax step with SFM (rate 0.5, targeted) in it")
  print(f"{'batch':>6}{'PyTorch':>12}{'sfm-jax':>12}{'ratio':>8}{'+ SFM':>12}{'SFM share':>11}")
  for batch in (int(b) for b in args.batches.split(",")):
    torch_time, jax_time, sfm_time = blocked_medians(
        [torch_step_fn(batch), jax_step_fn(batch), jax_step_fn(batch, sfm_rate=0.5)],
        args.repeats)
    print(f"{batch:>6}{torch_time * 1e3:>9.1f} ms{jax_time * 1e3:>9.1f} ms"
          f"{jax_time / torch_time:>8.2f}{sfm_time * 1e3:>9.1f} ms"
          f"{(sfm_time - jax_time) / sfm_time:>10.1%}")


if __name__ == "__main__":
  main()

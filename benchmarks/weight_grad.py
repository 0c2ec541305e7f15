"""Where the DnCNN-B train step spends its conv weight gradients, sfm-jax vs PyTorch on a CPU.

Runs, in one process and one call of each at a time (so that the VM's drift hits all alike),
the `benchmarks/train_step.py` steps with:
  sfm-jax             the folded weight gradient (`sfm_jax.ops.conv.folded_weight_grad`)
  sfm-jax, lax dW     lax's own weight gradient in its place (`ops.conv.lax_weight_grad`)
  sfm-jax, no dW      a zero weight gradient in its place (wrong values: timing only)
  PyTorch             the same step in PyTorch
  PyTorch, no dW      its conv weights frozen (timing only)
The two "no dW" rows bound what the weight gradients cost each framework.

  python benchmarks/weight_grad.py [--batch 16] [--repeats 20]
"""

from __future__ import annotations

import argparse
import contextlib
import os

import jax
import jax.numpy as jnp
from sfm_ops import blocked_medians  # this folder is on sys.path when run as a script
from train_step import jax_step_fn, torch_step_fn

from sfm_jax import xla_cpu
from sfm_jax.ops import conv as conv_ops


def no_weight_grad(x, g, kernel_shape, precision=None):
  """Zeros that still depend on x and g (so XLA keeps their producers): timing only."""
  del precision
  return jnp.zeros((*kernel_shape, x.shape[-1], g.shape[-1]), x.dtype) + 0 * (
      x[0, 0, 0, :, None] * g[0, 0, 0])


@contextlib.contextmanager
def weight_grad(fn):
  """Traces the steps built inside with `fn` as the CPU conv weight gradient."""
  original = conv_ops.folded_weight_grad
  conv_ops.folded_weight_grad = fn
  try:
    yield
  finally:
    conv_ops.folded_weight_grad = original


def traced_step(batch, fn):
  with weight_grad(fn):
    step = jax_step_fn(batch)
    step()  # jit traces on the first call, under the patch
  return step


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args()
  ynnpack = xla_cpu.enable()
  import torch

  torch.set_num_threads(os.cpu_count())
  steps = {
      "sfm-jax": traced_step(args.batch, conv_ops.folded_weight_grad),
      "sfm-jax, lax dW": traced_step(args.batch, conv_ops.lax_weight_grad),
      "sfm-jax, no dW": traced_step(args.batch, no_weight_grad),
      "PyTorch": torch_step_fn(args.batch),
      "PyTorch, no dW": torch_step_fn(args.batch, freeze_conv_weights=True),
  }
  print(f"{os.cpu_count()} cores; jax {jax.__version__} (YNNPACK {'on' if ynnpack else 'off'}); "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads); DnCNN-B train step, "
        f"batch {args.batch}, 64×64; medians of {args.repeats} interleaved steps")
  times = dict(zip(steps, blocked_medians(list(steps.values()), args.repeats,
                                          rounds=args.repeats), strict=True))
  for name, seconds in times.items():
    print(f"{name:>20} {seconds * 1e3:9.1f} ms {seconds / times['PyTorch']:6.2f}")
  ours, lax_dw, torch_dw = (times[a] - times[b] for a, b in [
      ("sfm-jax", "sfm-jax, no dW"), ("sfm-jax, lax dW", "sfm-jax, no dW"),
      ("PyTorch", "PyTorch, no dW")])
  print(f"weight gradients: sfm-jax {ours * 1e3:.0f} ms, lax's {lax_dw * 1e3:.0f} ms, PyTorch's "
        f"{torch_dw * 1e3:.0f} ms")


if __name__ == "__main__":
  main()

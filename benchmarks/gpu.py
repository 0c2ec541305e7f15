"""The GPU measurement in one command: training steps and inference, sfm-jax against PyTorch, in
float32 and bfloat16, with images/s, model FLOP utilisation and SFM's share of the step.

Training: DnCNN-B (17 layers, BN) at batch 128 on 64×64 gray patches with blind noise
σ ~ U(0, 55), and RRDBNet ×4 (SFM's gray layout, 23 blocks) at batch 16 on 128×128 HR patches
(bicubic ×1/4 on the device), L1, Adam. Each sfm-jax step is the trainer's own
(`train.setup.training_step`); "+ SFM" is the same step with SFM at rate 0.5, and "SFM share"
is (with − without) / with. The PyTorch steps do the same work on the SFM authors' networks
(`tests/torch_nets.py`), bfloat16 through `torch.autocast`. Inference: DnCNN-B on a 1024×1024
image, RRDBNet ×4 from 256×256 to 1024×1024.

Model FLOP utilisation (MFU) is XLA's count of the step's floating-point operations per second
over the device's dense peak (TF32 for float32, bf16 for bfloat16; printed as "–" for a device
not in PEAK_FLOPS, a CPU among them). Every line names the device. Times are medians of
alternating blocks (`sfm_ops.blocked_medians`), compilation excluded; the last line gives the
total time, sized for a few minutes on one H100 (not yet measured there: no GPU was at hand
when it was written). `--smoke` runs tiny versions of every case in about 30 s on a
CPU; the test suite does, so the script cannot rot while no GPU is at hand.

  python benchmarks/gpu.py [--smoke] [--repeats 30] [--cases train,infer]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys
import time

# JAX must leave GPU memory to PyTorch in the same process.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _machine import machine_line  # noqa: E402 (this folder is on sys.path as a script)
from _steps import compiled_flops, train_step_closure  # noqa: E402
from flax import nnx  # noqa: E402
from sfm_ops import blocked_medians  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# Dense peak FLOP/s by device kind (vendor data sheets, SXM parts): (TF32, bf16).
PEAK_FLOPS = {"H200": (494.7e12, 989.4e12), "H100": (494.7e12, 989.4e12),
              "A100": (156e12, 312e12)}


@dataclasses.dataclass(frozen=True)
class Case:
  """One network at one size: `jax_kwargs` for `models.get_model`, `torch_kwargs` for the
  PyTorch original; `size` is the HR patch (training) or output side (inference)."""
  model: str
  batch: int
  size: int
  scale: int
  jax_kwargs: dict
  torch_kwargs: dict


FULL = {"dncnn": Case("dncnn", 128, 64, 1, {"num_layers": 17, "features": 64},
                      {"num_of_layers": 17}),
        "rrdb": Case("rrdb", 16, 128, 4, {"nb": 23, "nf": 64, "gc": 32},
                     {"nb": 23, "nf": 64, "gc": 32})}
SMOKE = {"dncnn": Case("dncnn", 4, 16, 1, {"num_layers": 3, "features": 64},
                       {"num_of_layers": 3}),
         "rrdb": Case("rrdb", 2, 32, 4, {"nb": 1, "nf": 8, "gc": 4}, {"nb": 1, "nf": 8, "gc": 4})}
INFERENCE_SIZE = {"full": 1024, "smoke": 32}


def device_name() -> str:
  return jax.devices()[0].device_kind


def peak_flops(dtype: str) -> float | None:
  for kind, peaks in PEAK_FLOPS.items():
    if kind in device_name():
      return peaks[dtype == "bfloat16"]
  return None


# --- sfm-jax -------------------------------------------------------------------------------------


def jax_config(case: Case, dtype: str, sfm_rate: float):
  """The trainer's config of `case`: the SFM denoising recipe or SFM's SR recipe."""
  from sfm_jax.config_base import denoising_config, sr_config

  config = denoising_config(case.model) if case.scale == 1 else sr_config(case.model, case.scale)
  config.model.kwargs.update(case.jax_kwargs)
  config.train.batch_size, config.data.patch_size = case.batch, case.size
  config.train.compute_dtype = dtype
  config.task.sfm_rate = sfm_rate
  return config


def jax_train(case: Case, dtype: str, sfm_rate: float = 0.0):
  """(a closure running one sfm-jax train step, the step's FLOPs)."""
  return train_step_closure(jax_config(case, dtype, sfm_rate))


def jax_infer(case: Case, dtype: str, side: int):
  """(a closure restoring one side×side output, its FLOPs)."""
  from sfm_jax.models import Compute, get_model

  model = get_model(case.model, channels=1, compute=Compute.from_settings(dtype),
                    **case.jax_kwargs)
  model.eval()
  graph, state = nnx.split(model)
  apply = jax.jit(lambda s, x: nnx.merge(graph, s)(x))
  x = jnp.asarray(np.random.default_rng(0).random((1, side // case.scale, side // case.scale, 1),
                                                  np.float32))
  return (lambda: jax.block_until_ready(apply(state, x))), compiled_flops(apply, state, x)


# --- PyTorch -------------------------------------------------------------------------------------


def torch_device():
  import torch

  return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_network(case: Case):
  from torch_nets import DnCNN, RRDBNetSFM

  return (DnCNN if case.model == "dncnn" else RRDBNetSFM)(**case.torch_kwargs).to(torch_device())


def _synchronized(fn):
  import torch

  def run():
    fn()
    if torch.cuda.is_available():
      torch.cuda.synchronize()

  return run


def torch_train(case: Case, dtype: str):
  """A closure running the same step in PyTorch (autocast for bfloat16)."""
  import torch
  import torch.nn.functional as F  # noqa: N812 (PyTorch's convention)

  device = torch_device()
  net = torch_network(case).train()
  optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
  clean = torch.rand(case.batch, 1, case.size, case.size, device=device)

  def loss_fn():
    if case.scale == 1:  # SFM's DnCNN loss: the residual against the noise
      noise = torch.randn_like(clean) * torch.rand(case.batch, 1, 1, 1, device=device) * (55 / 255)
      return ((net(clean + noise) - noise) ** 2).sum() / (2 * case.batch)
    lr = F.interpolate(clean, scale_factor=1 / case.scale, mode="bicubic", antialias=True)
    return (net(lr) - clean).abs().mean()

  def step():
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
      loss = loss_fn()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()

  return _synchronized(step)


def torch_infer(case: Case, dtype: str, side: int):
  import torch

  net = torch_network(case).eval()
  x = torch.rand(1, 1, side // case.scale, side // case.scale, device=torch_device())

  def call():
    with torch.inference_mode(), torch.autocast(torch_device().type, dtype=torch.bfloat16,
                                                enabled=dtype == "bfloat16"):
      net(x)

  return _synchronized(call)


# --- report --------------------------------------------------------------------------------------


def _mfu(flops: float | None, seconds: float, dtype: str) -> str:
  peak = peak_flops(dtype)
  return f"{flops / seconds / peak:.1%}" if flops and peak else "–"


def train_rows(cases: dict, repeats: int, with_torch: bool):
  print(f"\nTraining step ({device_name()}): sfm-jax vs PyTorch, medians over {repeats} steps")
  print(f"{'device':<22}{'network':<8}{'batch':>6}{'dtype':>10}{'PyTorch':>11}{'sfm-jax':>11}"
        f"{'ratio':>7}{'img/s':>9}{'MFU':>7}{'+ SFM':>11}{'SFM share':>10}")
  for case in cases.values():
    for dtype in ("float32", "bfloat16"):
      plain, flops = jax_train(case, dtype)
      with_sfm, _ = jax_train(case, dtype, sfm_rate=0.5)
      fns = [plain, with_sfm] + ([torch_train(case, dtype)] if with_torch else [])
      times = blocked_medians(fns, repeats)
      ours, sfm = times[0], times[1]
      theirs = f"{times[2] * 1e3:8.1f} ms" if with_torch else f"{'–':>11}"
      ratio = f"{ours / times[2]:7.2f}" if with_torch else f"{'–':>7}"
      print(f"{device_name():<22}{case.model:<8}{case.batch:>6}{dtype:>10}{theirs}"
            f"{ours * 1e3:8.1f} ms{ratio}{case.batch / ours:9.1f}{_mfu(flops, ours, dtype):>7}"
            f"{sfm * 1e3:8.1f} ms{(sfm - ours) / sfm:>10.1%}", flush=True)


def inference_rows(cases: dict, side: int, repeats: int, with_torch: bool):
  print(f"\nInference ({device_name()}): one {side}×{side} output, medians over {repeats} calls")
  print(f"{'device':<22}{'network':<8}{'dtype':>10}{'PyTorch':>11}{'sfm-jax':>11}{'ratio':>7}"
        f"{'img/s':>9}{'MFU':>7}")
  for case in cases.values():
    for dtype in ("float32", "bfloat16"):
      call, flops = jax_infer(case, dtype, side)
      fns = [call] + ([torch_infer(case, dtype, side)] if with_torch else [])
      times = blocked_medians(fns, repeats)
      theirs = f"{times[1] * 1e3:8.1f} ms" if with_torch else f"{'–':>11}"
      ratio = f"{times[0] / times[1]:7.2f}" if with_torch else f"{'–':>7}"
      print(f"{device_name():<22}{case.model:<8}{dtype:>10}{theirs}{times[0] * 1e3:8.1f} ms"
            f"{ratio}{1 / times[0]:9.1f}{_mfu(flops, times[0], dtype):>7}", flush=True)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--smoke", action="store_true", help="tiny sizes (a CPU check)")
  parser.add_argument("--repeats", type=int, default=None, help="default 30 (smoke: 2)")
  parser.add_argument("--cases", default="train,infer")
  args = parser.parse_args(argv)
  repeats = args.repeats or (2 if args.smoke else 30)
  cases = SMOKE if args.smoke else FULL
  try:
    import torch
  except ImportError:
    torch = None
    print("PyTorch is not installed: its columns are left empty.")
  print(machine_line() + (f"; torch {torch.__version__}" if torch else ""))
  if jax.default_backend() == "cpu" and not args.smoke:
    print("warning: JAX runs on the CPU; this measurement is meant for a GPU.")
  kinds, started = args.cases.split(","), time.perf_counter()
  if "train" in kinds:
    train_rows(cases, repeats, torch is not None)
  if "infer" in kinds:
    inference_rows(cases, INFERENCE_SIZE["smoke" if args.smoke else "full"], repeats,
                   torch is not None)
  print(f"\ntotal {time.perf_counter() - started:.0f} s on {device_name()}")


if __name__ == "__main__":
  main()

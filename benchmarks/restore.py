"""A large photo through `sfm-restore` against the PyTorch original, side by side: wall time and
peak resident memory of each whole command (start-up, reading, the model, writing), and the
largest difference between the outputs in 8-bit levels.

Runs, each in its own process:
  default   python -m sfm_jax.restore --weights W --input photo.png --output OUT (tiles sized
            to the memory: the command a user runs)
  tile 512  the same with --tile 512 (the forced-tile run the default must equal)
  PyTorch   the SFM authors' DnCNN (tests/torch_nets.py) with the same weights, on the same
            512-pixel tiles with the same 17 pixels of context, R, G and B as one batch of three
            for colour (as sfm-restore's --color per_channel)

The photo is scikit-image's camera (gray) or astronaut (colour) enlarged bicubic to the size and
given Gaussian noise of σ = 25 (seeded), saved as an 8-bit PNG. The weights are the released
DnCNN-B's `net.pth`, converted once for sfm-jax.

  P=../shared/weights/sfm_denoising/gray_DnCNN_55_SFMm0_0.00_Noise0_GT0/net.pth
  python benchmarks/restore.py --pth $P
  python benchmarks/restore.py --pth $P --size 4000x3000 --colour --no_reference
  python benchmarks/restore.py --pth $P --size 6000x4000 --no_reference
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from _machine import cpu_model  # this folder is on sys.path when run as a script
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
TILE, OVERLAP = 512, 17  # DnCNN-B's receptive field (its model card), as sfm-restore uses


def make_photo(path: pathlib.Path, width: int, height: int, colour: bool) -> None:
  from skimage import data

  clean = Image.fromarray(data.astronaut() if colour else data.camera())
  clean = np.asarray(clean.resize((width, height), Image.BICUBIC), np.float32) / 255
  noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape)
  Image.fromarray(np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)).save(path)


def timed(command: list[str]) -> tuple[float, float]:
  """(wall seconds, peak resident GiB) of `command` run to completion in its own process."""
  with tempfile.TemporaryFile("w+") as log:  # progress bars off the table, kept for errors
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
      log.seek(0)
      raise SystemExit(f"failed: {' '.join(command)}\n{log.read()[-3000:]}")
  return seconds, usage.ru_maxrss / 2**20


def torch_restore(pth: str, source: str, target: str) -> None:
  """The PyTorch run (in its own process): DnCNN on TILE×TILE tiles with OVERLAP of context."""
  import torch

  sys.path.insert(0, str(ROOT / "tests"))
  from torch_nets import DnCNN_RL

  torch.set_num_threads(os.cpu_count())
  net = DnCNN_RL()
  state = torch.load(pth, map_location="cpu", weights_only=True)
  net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
  net.eval()
  pixels = np.asarray(Image.open(source), np.float32) / 255
  planes = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)  # (N, H, W)
  out = np.empty_like(planes)
  height, width = planes.shape[1:]
  with torch.inference_mode():
    for top in range(0, height, TILE):
      for left in range(0, width, TILE):
        y0, x0 = max(top - OVERLAP, 0), max(left - OVERLAP, 0)
        y1, x1 = min(top + TILE + OVERLAP, height), min(left + TILE + OVERLAP, width)
        tile = torch.from_numpy(np.ascontiguousarray(planes[:, None, y0:y1, x0:x1]))
        result = net(tile).numpy()[:, 0]
        core = result[:, top - y0:top - y0 + TILE, left - x0:left - x0 + TILE]
        out[:, top:top + core.shape[1], left:left + core.shape[2]] = core
  restored = out[0] if pixels.ndim == 2 else np.moveaxis(out, 0, -1)
  Image.fromarray(np.round(np.clip(restored, 0, 1) * 255).astype(np.uint8)).save(target)


def convert(pth: str, target: pathlib.Path) -> None:
  from sfm_jax.convert import convert_checkpoint
  from sfm_jax.weights import save_weights

  model, kwargs, _ = convert_checkpoint(pth, "dncnn")
  save_weights(target, model, "dncnn", kwargs)


def levels(a: pathlib.Path, b: pathlib.Path) -> int:
  """The largest difference between two 8-bit images, in levels."""
  return int(np.abs(np.asarray(Image.open(a), int) - np.asarray(Image.open(b), int)).max())


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pth", required=True, help="The released DnCNN-B net.pth.")
  parser.add_argument("--size", default="4000x3000", help="W×H of the photo.")
  parser.add_argument("--colour", action="store_true", help="An RGB photo (default: gray).")
  parser.add_argument("--no_reference", action="store_true", help="Skip the PyTorch run.")
  parser.add_argument("--torch_child", nargs=2, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.torch_child:
    torch_restore(args.pth, *args.torch_child)
    return
  width, height = (int(v) for v in args.size.split("x"))
  with tempfile.TemporaryDirectory() as folder:
    folder = pathlib.Path(folder)
    photo, weights = folder / "photo.png", folder / "dncnn_b.msgpack"
    make_photo(photo, width, height, args.colour)
    convert(args.pth, weights)
    restore = [sys.executable, "-m", "sfm_jax.restore", "--weights", str(weights), "--input",
               str(photo)]
    runs = {"sfm-restore (default)": [*restore, "--output", str(folder / "default")],
            f"sfm-restore --tile {TILE}": [*restore, "--output", str(folder / "tiled"),
                                           "--tile", str(TILE)]}
    outputs = {"sfm-restore (default)": folder / "default" / "photo.png",
               f"sfm-restore --tile {TILE}": folder / "tiled" / "photo.png"}
    if not args.no_reference:
      runs[f"PyTorch, tiles of {TILE}"] = [sys.executable, __file__, "--pth", args.pth,
                                          "--torch_child", str(photo), str(folder / "torch.png")]
      outputs[f"PyTorch, tiles of {TILE}"] = folder / "torch.png"
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; DnCNN-B on a {width}×{height} "
          f"{'colour' if args.colour else 'gray'} photo")
    print(f"{'run':<28}{'wall':>9}{'peak RSS':>11}{'vs default':>12}")
    base, first = None, None
    for name, command in runs.items():
      seconds, peak = timed(command)
      base, first = base or seconds, first or outputs[name]
      difference = "" if outputs[name] == first else f"{levels(outputs[name], first)} level(s)"
      print(f"{name:<28}{seconds:>7.1f} s{peak:>7.2f} GiB{seconds / base:>8.2f}×  {difference}",
            flush=True)


if __name__ == "__main__":
  main()

"""Streaming against the fixed pipeline on DIV2K-size data: peak host memory of a 200-step SR
run, the loader's patches/s against the train step's, and a killed streamed run resumed.

Makes (or reuses) a folder of synthetic 2048×1536 RGB PNGs (smooth random colour fields with
edges and noise, so they compress like photos), then:

1. runs the same SR training (train.py on configs/sr_quick.py in RGB: RRDBNet ×2, 2 blocks,
   batch 16, 96×96 HR patches, 200 steps) with data.pipeline "stream" and "fixed", each in its own
   process, and prints its peak resident memory (ru_maxrss from wait4, reader processes
   included), its wall time and the train step's patches/s (from the logged steps);
2. reads the stream alone for --loader_batches batches, with one and with four patches per
   decoded image, and prints its patches/s beside the train step's own consumption (the fixed
   run's, where no reading competes for the cores; > 1: the loader keeps ahead);
3. starts the streamed run again in a new workdir, kills it (SIGKILL) once its checkpoint at
   --kill_after has landed, resumes it, and prints the largest weight difference to the
   uninterrupted run of step 1.

  python benchmarks/streaming.py [--folder DIR] [--images 200] [--steps 200]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from _machine import machine_line  # this folder is on sys.path when run as a script

ROOT = pathlib.Path(__file__).resolve().parents[1]


def synthetic_photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """uint8 (height, width, 3): a bicubic-upsampled 24×32 random colour field, a few flat
  rectangles (edges) and σ = 3 noise."""
  from PIL import Image

  coarse = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
  image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.float32)
  for _ in range(6):
    top, left = rng.integers(0, height - 64), rng.integers(0, width - 64)
    h, w = rng.integers(32, height // 3), rng.integers(32, width // 3)
    image[top:top + h, left:left + w] = rng.integers(0, 256, 3)
  image += rng.normal(0, 3, image.shape)
  return np.clip(np.round(image), 0, 255).astype(np.uint8)


def make_folder(folder: pathlib.Path, count: int, height: int, width: int) -> pathlib.Path:
  """`count` synthetic PNGs in `folder` (kept between runs: only missing ones are written)."""
  from PIL import Image

  folder.mkdir(parents=True, exist_ok=True)
  for i in range(count):
    path = folder / f"{i:04d}.png"
    if not path.exists():
      image = synthetic_photo(np.random.default_rng(i), height, width)
      Image.fromarray(image).save(path.with_suffix(".tmp.png"), compress_level=1)
      path.with_suffix(".tmp.png").rename(path)
  return folder


def train_command(folder: pathlib.Path, pipeline: str, steps: int, workdir: pathlib.Path,
                  checkpoint_every: int) -> list[str]:
  """train.py on configs/sr_quick.py (RRDBNet ×2, 2 blocks × 16 features) in RGB over
  `folder`."""
  overrides = {"data.source": folder, "data.val_source": "builtin", "data.pipeline": pipeline,
               "data.channels": 3, "model.kwargs.channels": 3, "data.patch_size": 96,
               "data.stride": 96, "train.batch_size": 16, "train.steps": steps,
               "train.log_every": max(steps // 8, 1), "train.eval_every": 10 * steps,
               "train.checkpoint_every": checkpoint_every, "train.require_improvement": False}
  return [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs/sr_quick.py"),
          "--workdir", str(workdir), *(f"--config.{k}={v}" for k, v in overrides.items())]


def measured_run(command: list[str]) -> dict:
  """Runs `command`; its wall time and peak resident memory (ru_maxrss of it and the processes
  it waited for, from wait4)."""
  started = time.perf_counter()
  run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  stderr = run.stderr.read()
  _, status, usage = os.wait4(run.pid, 0)
  if os.waitstatus_to_exitcode(status):
    raise SystemExit(f"{' '.join(command[:4])} failed:\n{stderr.decode()[-3000:]}")
  return {"seconds": time.perf_counter() - started, "peak_gib": usage.ru_maxrss / 2**20}


def step_rate(workdir: pathlib.Path) -> float:
  """Train steps per second over the logged steps after the first (compilation excluded), from
  the clu log (WORKDIR/events: the step timestamps)."""
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

  events = EventAccumulator(str(workdir)).Reload()
  loss = events.Tensors("loss")
  first, last = loss[0], loss[-1]
  return (last.step - first.step) / (last.wall_time - first.wall_time)


def loader_rate(folder: pathlib.Path, batches: int, patches_per_image: int) -> float:
  """Patches/s of the stream alone (16-patch batches, `patches_per_image` from each decoded
  image) over `batches` batches after the first."""
  from sfm_jax.data import streaming

  source = streaming.open_source(str(folder), "train", 3)
  stream = streaming.patch_stream(source, batch_size=16, patch_size=96, seed=0,
                                  patches_per_image=patches_per_image)
  next(stream)
  started = time.perf_counter()
  for _ in range(batches):
    next(stream)
  rate = batches * 16 / (time.perf_counter() - started)
  stream.close()
  return rate


def killed_and_resumed(folder: pathlib.Path, steps: int, kill_after: int,
                       workdir: pathlib.Path) -> None:
  """Runs the streamed training, SIGKILLs it once checkpoint `kill_after` is committed, and
  resumes it to `steps`."""
  command = train_command(folder, "stream", steps, workdir, kill_after)
  run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  marker = workdir / "checkpoints" / str(kill_after) / "commit_success.txt"
  while not marker.exists():
    if run.poll() is not None:
      raise SystemExit("the run ended before it could be killed; lower --kill_after.")
    time.sleep(0.05)
  run.send_signal(signal.SIGKILL)
  run.wait()
  measured_run(command)


def largest_weight_difference(a: pathlib.Path, b: pathlib.Path) -> float:
  import jax
  from flax import nnx

  from sfm_jax.weights import load_weights

  leaves = [jax.tree.leaves(nnx.state(load_weights(p)[0])) for p in (a, b)]
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(*leaves, strict=True))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--folder", default=str(pathlib.Path(tempfile.gettempdir())
                                              / "sfm_jax_div2k_size"))
  parser.add_argument("--images", type=int, default=200)
  parser.add_argument("--size", default="2048x1536", help="WIDTHxHEIGHT of the images")
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--loader_batches", type=int, default=30)
  parser.add_argument("--kill_after", type=int, default=100)
  parser.add_argument("--pipelines", default="stream,fixed")
  args = parser.parse_args()
  folder = pathlib.Path(args.folder)
  from sfm_jax import xla_cpu

  xla_cpu.enable()
  print(machine_line())
  width, height = (int(v) for v in args.size.split("x"))
  started = time.perf_counter()
  make_folder(folder, args.images, height, width)
  megabytes = sum(p.stat().st_size for p in folder.glob("*.png")) / 2**20
  print(f"{args.images} synthetic {width}×{height} RGB PNGs in {folder} ({megabytes:,.0f} MiB "
        f"on disk, decoded {args.images * width * height * 3 / 2**30:.1f} GiB; "
        f"ready in {time.perf_counter() - started:.0f} s)")
  with tempfile.TemporaryDirectory() as scratch:
    scratch = pathlib.Path(scratch)
    print(f"\nSR training, {args.steps} steps, batch 16, 96×96 RGB HR patches, one process each:")
    print(f"{'pipeline':<10}{'peak RSS':>12}{'wall':>10}{'step patches/s':>16}")
    rates = {}
    for pipeline in args.pipelines.split(","):
      command = train_command(folder, pipeline, args.steps, scratch / pipeline, args.kill_after)
      result = measured_run(command)
      rates[pipeline] = 16 * step_rate(scratch / pipeline)
      print(f"{pipeline:<10}{result['peak_gib']:>8.2f} GiB{result['seconds']:>8.0f} s"
            f"{rates[pipeline]:>16.0f}", flush=True)
    if "stream" in rates:
      from sfm_jax.data.streaming import default_threads

      # the step's own consumption: the fixed run's, where no reading shares the cores
      step_alone = rates.get("fixed", rates["stream"])
      print(f"\nloader alone ({default_threads()} threads), against the train step's "
            f"{step_alone:.0f} patches/s without loading:")
      for per_image in (1, 4):
        patches = loader_rate(folder, args.loader_batches, per_image)
        print(f"  data.stream.patches_per_image={per_image}: {patches:.0f} patches/s, ratio "
              f"{patches / step_alone:.2f} (> 1: the loader keeps ahead)", flush=True)
      killed_and_resumed(folder, args.steps, args.kill_after, scratch / "killed")
      difference = largest_weight_difference(scratch / "killed" / "weights.msgpack",
                                             scratch / "stream" / "weights.msgpack")
      print(f"killed at step {args.kill_after} (SIGKILL) and resumed: largest weight difference "
            f"to the uninterrupted run {difference:.2e}")


if __name__ == "__main__":
  main()

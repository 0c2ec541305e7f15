"""The measurement scripts run end to end at tiny sizes, so they work when a GPU is at hand."""

import os
import re
import subprocess
import sys

import pytest
from test_train import ROOT

NUMBER = r"[-+]?\d+(?:\.\d+)?"


def run_script(*args, timeout=600) -> str:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=timeout)
  assert out.returncode == 0, out.stderr[-3000:]
  return out.stdout


def rows(output: str, first_word: str) -> list[list[str]]:
  return [line.split() for line in output.splitlines() if line.startswith(first_word)]


def test_the_gpu_benchmark_smoke_size_prints_every_case():
  pytest.importorskip("torch")
  output = run_script("benchmarks/gpu.py", "--smoke", "--repeats", "1")
  train, infer = output.split("\nInference")
  for part, count in ((train, 4), (infer, 4)):
    found = rows(part, "cpu")
    assert len(found) == count
    assert {r[1] for r in found} == {"dncnn", "rrdb"}
    assert {"float32", "bfloat16"} <= {w for r in found for w in r}
    for row in found:  # PyTorch and sfm-jax times, then their ratio
      times = re.findall(rf"({NUMBER}) ms", " ".join(row))
      assert len(times) >= 2 and all(float(t) > 0 for t in times)
  for row in rows(train, "cpu"):
    assert row[-1].endswith("%")  # SFM's share of the step


@pytest.mark.slow  # five training runs, ~2 minutes here
def test_the_streaming_benchmark_runs_on_a_small_folder(tmp_path):
  output = run_script("benchmarks/streaming.py", "--folder", str(tmp_path / "images"),
                      "--images", "6", "--size", "256x192", "--steps", "8", "--kill_after", "4",
                      "--loader_batches", "2")
  assert len(list((tmp_path / "images").glob("*.png"))) == 6
  peaks = {r[0]: float(r[1]) for r in rows(output, "stream") + rows(output, "fixed")}
  assert set(peaks) == {"stream", "fixed"} and all(0.1 < v < 8 for v in peaks.values())
  assert "largest weight difference to the uninterrupted run 0.00e+00" in output


@pytest.mark.slow  # two short quickstart runs and the step timings, ~2 minutes here
def test_the_precision_benchmark_compares_both_dtypes():
  output = run_script("benchmarks/precision.py", "--steps", "4", "--repeats", "2",
                      "--networks", "quickstart")
  psnr = rows(output, "    0")  # seed 0: three PSNRs and two gaps
  assert len(psnr) == 1 and psnr[0].count("dB") == 5
  assert all(float(v) > 15 for v in psnr[0][1:6:2])
  step = rows(output, "quickstart DnCNN")
  assert len(step) == 1 and float(step[0][-1]) > 0

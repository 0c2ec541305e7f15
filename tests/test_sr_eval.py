"""eval.py --task sr: the bicubic baseline against the literature, and a model run."""

import csv
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sfm_jax.evaluate import sr_scores

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_eval(*args):
  out = subprocess.run([sys.executable, "eval.py", "--task", "sr", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return out


@pytest.mark.parametrize("scale, psnr, ssim", [(4, 28.42, 0.8104)])
def test_bicubic_baseline_through_eval_matches_literature(shared_data, tmp_path, scale, psnr,
                                                          ssim):
  run_eval("--bicubic", "--scale", str(scale), "--dataset", str(shared_data / "CSet5"),
           "--output", str(tmp_path))
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert abs(summary["bicubic_psnr"] - psnr) <= 0.05
  assert abs(summary["bicubic_ssim"] - ssim) <= 0.002


def test_sr_model_row_and_scores(tmp_path):
  from sfm_jax.models import get_model
  from sfm_jax.weights import save_weights

  rng = np.random.default_rng(0)
  folder = tmp_path / "hr"
  folder.mkdir()
  for i in range(2):
    Image.fromarray(rng.integers(0, 256, (26, 30, 3), dtype=np.uint8)).save(folder / f"{i}.png")
  kwargs = {"channels": 3, "scale": 2, "nb": 1, "nf": 8, "gc": 4}
  save_weights(tmp_path / "rrdb.msgpack", get_model("rrdb", **kwargs), "rrdb", kwargs)
  out = run_eval("--weights", str(tmp_path / "rrdb.msgpack"), "--scale", "2", "--dataset",
                 str(folder), "--output", str(tmp_path / "out"))
  rows = list(csv.DictReader(open(tmp_path / "out" / "results.csv")))
  assert [r["image"] for r in rows] == ["0.png", "1.png"] and "rrdb" in out.stdout
  assert all(np.isfinite(float(r["psnr"])) for r in rows)


def test_sr_scores_psnr_on_y_with_crop():
  target = np.zeros((20, 20, 3))
  output = target.copy()
  output[2:18, 2:18] = 1.0 / 255  # one level on R, G and B, exactly the area kept by crop 2
  output[0, 0] = 1.0  # in the cropped border: ignored
  psnr, _ = sr_scores(output, target, crop=2)
  y_step = (65.481 + 128.553 + 24.966) / 255  # the Y change for +1/255 on every channel
  np.testing.assert_allclose(psnr, 10 * np.log10(255**2 / y_step**2), rtol=1e-5)

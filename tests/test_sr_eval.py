"""eval.py --task sr: the bicubic baseline against the literature, kernel sweeps, a model run,
tiled and self-ensembled SR inference."""

import csv
import json
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from sfm_jax import ops
from sfm_jax.evaluation.sr import degrade_sr
from sfm_jax.inference import make_upscaler
from sfm_jax.metrics import sr_scores
from sfm_jax.models import get_model
from sfm_jax.niqe import niqe

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_eval(*args):
  out = subprocess.run([sys.executable, "eval.py", "--task", "sr", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return out


LITERATURE_BICUBIC = {  # PSNR on Y, crop = scale (e.g. the SRCNN / VDSR / EDSR tables)
    ("CSet5", 2): (33.66, 0.05), ("CSet5", 3): (30.39, 0.05), ("CSet5", 4): (28.42, 0.05),
    ("CSet14", 2): (30.24, 0.1), ("CSet14", 3): (27.55, 0.1), ("CSet14", 4): (26.00, 0.1),
}


@pytest.mark.parametrize("dataset, scale", [
    case if case == ("CSet5", 4) else pytest.param(*case, marks=pytest.mark.slow)
    for case in sorted(LITERATURE_BICUBIC)])  # one eval.py run by default, every one with -m slow
def test_bicubic_baseline_through_eval_matches_literature(shared_data, tmp_path, dataset, scale):
  run_eval("--bicubic", f"--config.eval.scale={scale}", "--dataset", str(shared_data / dataset),
           "--output", str(tmp_path))
  summary = json.loads((tmp_path / "summary.json").read_text())
  want, tolerance = LITERATURE_BICUBIC[dataset, scale]
  assert abs(summary["bicubic_psnr"] - want) <= tolerance
  if (dataset, scale) == ("CSet5", 4):
    assert abs(summary["bicubic_ssim"] - 0.8104) <= 0.002
    # NIQE: bicubic ×4 is less natural than the HR photos and than bicubic ×2 (--compare).
    hr_niqe = np.mean([niqe(np.asarray(Image.open(p))) for p in (shared_data / dataset).iterdir()])
    assert summary["niqe"] == summary["bicubic_niqe"] > hr_niqe + 1
    out = run_eval("--bicubic", "--config.eval.scale=2", "--dataset",
                   str(shared_data / dataset), "--output", str(tmp_path / "x2"),
                   "--compare", str(tmp_path))
    x2 = json.loads((tmp_path / "x2" / "summary.json").read_text())
    assert hr_niqe < x2["bicubic_niqe"] < summary["bicubic_niqe"]
    assert "NIQE" in out.stdout and (tmp_path / "x2" / "perception_distortion.png").is_file()


@pytest.mark.slow
def test_kernel_sweep_rows_per_blur_sigma(shared_data, tmp_path):
  out = run_eval("--bicubic", "--config.eval.scale=2", "--dataset", str(shared_data / "CSet5"),
                 "--config.eval.blur_sigmas=0,1,2", "--output", str(tmp_path))
  rows = list(csv.DictReader(open(tmp_path / "results.csv")))
  assert [float(r["blur_sigma"]) for r in rows] == [0.0] * 5 + [1.0] * 5 + [2.0] * 5
  by_sigma = json.loads((tmp_path / "summary.json").read_text())["by_blur_sigma"]
  psnrs = [by_sigma[s]["bicubic_psnr"] for s in ("0", "1", "2")]
  assert psnrs[0] > psnrs[1] > psnrs[2]  # more blur, further from the HR
  assert abs(psnrs[0] - 33.66) <= 0.05 and "blur σ" in out.stdout


def test_blurred_degradation_matches_scipy():
  """degrade_sr = 8-bit(imresize(convolve(HR, Gaussian, mirror borders), 1/s))."""
  hr = np.random.default_rng(0).random((24, 20, 3)).astype(np.float32)
  kernel = np.asarray(ops.gaussian_kernel(21, 1.5), np.float64)
  blurred = np.stack([scipy.ndimage.convolve(hr[..., c].astype(np.float64), kernel,
                                             mode="mirror") for c in range(3)], axis=-1)
  want = np.round(np.clip(np.asarray(ops.imresize(jnp.asarray(blurred, jnp.float32),
                                                  scale=0.5)), 0, 1) * 255) / 255
  np.testing.assert_allclose(degrade_sr(hr, 2, blur_sigma=1.5), want, atol=1 / 255 + 1e-6)
  assert np.mean(np.abs(degrade_sr(hr, 2, blur_sigma=1.5) - want) > 1e-6) < 0.01


def test_tiled_sr_equals_whole_image_and_ensemble_is_the_dihedral_mean(dihedral_mean):
  model = get_model("rrdb", channels=1, scale=2, nb=1, nf=8, gc=4, seed=3)  # radius ≤ 19 LR px
  lr = np.random.default_rng(2).random((30, 26, 1)).astype(np.float32)
  whole = make_upscaler(model)(lr)
  assert whole.shape == (60, 52, 1)
  np.testing.assert_allclose(make_upscaler(model, tile=12, tile_overlap=20)(lr), whole,
                             atol=1e-5)
  assert not np.allclose(make_upscaler(model, tile=12, tile_overlap=0)(lr), whole, atol=1e-5)
  np.testing.assert_allclose(make_upscaler(model, self_ensemble=True)(lr),
                             dihedral_mean(make_upscaler(model), lr), atol=1e-5)


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
  out = run_eval("--weights", str(tmp_path / "rrdb.msgpack"), "--dataset",
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

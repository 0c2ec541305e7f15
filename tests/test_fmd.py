"""The FMD microscopy benchmark (evaluation/fmd.py) on a synthetic FMD folder: Poisson–Gaussian
captures of a smooth specimen, laid out as the dataset (group/level/fov/*.png, gt/fov/avg50.png).
The real FMD data are not needed; the release's figures are the target in docs/reproduction.md."""

import json
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from sfm_jax.errors import DataError
from sfm_jax.evaluation import fmd
from sfm_jax.inference import make_apply
from sfm_jax.models import get_model, model_card
from sfm_jax.weights import save_weights

ROOT = pathlib.Path(__file__).resolve().parents[1]
GROUPS = ("TwoPhoton_MICE", "Confocal_FISH")
SIZE, CAPTURES = 512, 2


def _capture(specimen, rng, count):
  """The mean of `count` Poisson–Gaussian raw captures (photon peak 30, read noise 0.02)."""
  total = np.zeros_like(specimen)
  for _ in range(count):
    raw = rng.poisson(specimen * 30) / 30 + rng.normal(0, 0.02, specimen.shape)
    total += np.clip(raw, 0, 1)
  return total / count


def _save(path: pathlib.Path, image):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.round(image * 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def fmd_root(tmp_path_factory):
  """Two groups with field of view 19 (the test one); a training field of view (3) of black
  images that must never be scored."""
  root = tmp_path_factory.mktemp("fmd")
  rng = np.random.default_rng(0)
  y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
  for g, group in enumerate(GROUPS):
    specimen = 0.2 + 0.6 * np.sin(3 * np.pi * x + g) ** 2 * np.cos(2 * np.pi * y) ** 2
    _save(root / group / "gt" / "19" / "avg50.png", _capture(specimen, rng, 50))
    _save(root / group / "raw" / "3" / "black.png", np.zeros((SIZE, SIZE)))
    for level, folder in fmd.LEVEL_FOLDERS.items():
      for k in range(CAPTURES):
        _save(root / group / folder / "19" / f"HV110_P0500510{k}.png",
              _capture(specimen, rng, level))
  return root


def test_test_set_is_field_of_view_19_of_every_group_and_level(fmd_root):
  captures = fmd.load_test_set(fmd_root)
  assert len(captures) == len(GROUPS) * len(fmd.NOISE_LEVELS) * CAPTURES
  assert captures[0].group == "TwoPhoton_MICE"  # the benchmark's group order
  assert all(c.noisy.max() > 0 for c in captures)  # field of view 3 left out
  truth = np.asarray(Image.open(fmd_root / "Confocal_FISH" / "gt" / "19" / "avg50.png"))
  assert all(np.array_equal(c.clean[..., 0], truth) for c in captures if c.group ==
             "Confocal_FISH")


def test_missing_parts_are_named(tmp_path, fmd_root):
  with pytest.raises(DataError, match="none of the FMD groups"):
    fmd.load_test_set(tmp_path)
  (tmp_path / "Confocal_MICE" / "raw" / "19").mkdir(parents=True)
  with pytest.raises(DataError, match=r"Confocal_MICE/gt/19/avg50.png is missing"):
    fmd.load_test_set(tmp_path)


def test_identity_scores_the_noisy_crops_and_averaging_gains_3_db_per_doubling(fmd_root):
  """With the identity as denoiser every crop's PSNR is the noisy crop's (computed here with
  numpy); averaging N captures divides the noise variance by N: +3 dB per doubling."""
  captures = fmd.load_test_set(fmd_root)
  shapes = []

  def identity(x, level):
    shapes.append(x.shape)
    return x

  summary = fmd.summarize(fmd.score_captures(identity, captures, fmd.FMDProtocol()))
  assert set(shapes) == {(1, 256, 256, 1)} and len(shapes) == 4 * len(captures)
  for group in GROUPS:
    cell = [c for c in captures if c.group == group and c.level == 4]
    expected = np.mean([10 * np.log10(1 / np.mean((n - t) ** 2))
                        for c in cell for n, t in zip(
                            fmd.corner_crops(c.noisy / 255, 256),
                            fmd.corner_crops(c.clean / 255, 256), strict=True)])
    assert summary[f"noise4_{group}"]["psnr"] == pytest.approx(expected, abs=1e-6)
    gains = np.diff([summary[f"noise{n}_{group}"]["psnr"] for n in (1, 2, 4)])
    assert np.all((gains > 2.6) & (gains < 3.3)), gains
  assert summary["noise1_Confocal_FISH"]["samples"] == CAPTURES * 4


def test_microscopy_unet_offset_maps_the_unit_range(rng):
  """input_offset=−0.5 is the release's x − 0.5 input and + 0.5 output around the same net."""
  shifted = get_model("unet", features=8, input_offset=-0.5)
  plain = get_model("unet", features=8)
  x = jnp.asarray(rng.uniform(0, 1, (1, 32, 64, 1)), jnp.float32)
  np.testing.assert_allclose(shifted(x), plain(x - 0.5) + 0.5, atol=1e-6)


def test_eval_py_runs_the_fmd_benchmark_of_a_microscopy_model(fmd_root, tmp_path):
  """A weights file that names the FMD protocol (as sfm:n2n_fmd does) is scored on the FMD
  folder by eval.py with no other flag."""
  model = get_model("unet", features=8, input_offset=-0.5)
  kwargs = {"features": 8, "input_offset": -0.5}
  save_weights(tmp_path / "w.msgpack", model, "unet", kwargs, {"protocol": "fmd"})
  assert model_card("unet", kwargs).protocol == "denoise"  # the weights' metadata decides
  done = subprocess.run([sys.executable, str(ROOT / "eval.py"), "--weights",
                         str(tmp_path / "w.msgpack"), "--dataset", str(fmd_root), "--output",
                         str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path)
  assert done.returncode == 0, done.stderr[-2000:]
  results = json.loads((tmp_path / "out" / "results.json").read_text())
  assert set(results) == {f"noise{n}_{g}" for n in fmd.NOISE_LEVELS for g in GROUPS}
  assert "mean" in done.stdout and "TwoPhoton_MICE" in done.stdout
  apply = make_apply(model)
  captures = [c for c in fmd.load_test_set(fmd_root) if c.level == 16 and c.group == GROUPS[1]]
  direct = fmd.summarize(fmd.score_captures(apply, captures, fmd.FMDProtocol()))
  assert results[f"noise16_{GROUPS[1]}"]["psnr"] == pytest.approx(
      direct[f"noise16_{GROUPS[1]}"]["psnr"], abs=1e-4)

"""The studies under studies/: the ablation's arms do what their names say, the tables and plots
are computed right, and the GPU reproduction runs end to end with --smoke (slow)."""

import csv
import importlib.util
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sfm_jax.config_base import ABLATION_ARMS
from sfm_jax.train.setup import build_task

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies"))
import docs_tables  # noqa: E402
import sfm_ablation  # noqa: E402
import sfm_bands  # noqa: E402
import sfm_reproduce  # noqa: E402
import sr_hole  # noqa: E402


def load_config(path):
  spec = importlib.util.spec_from_file_location("config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def clean_targets(arm):
  """The effective clean images (noisy − noise) of one training batch of `arm`'s config, and the
  batch: (B, H, W, 1) each."""
  config = load_config(ROOT / "configs" / f"ablation_{arm}.py")
  clean = jax.random.uniform(jax.random.key(1), (64, 40, 40, 1))
  batch = build_task(config).synthesize(jax.random.key(2), clean, jnp.zeros((), jnp.int32))
  return np.asarray(batch["target"]), np.asarray(clean)


@pytest.mark.parametrize("arm", list(ABLATION_ARMS))
def test_each_arm_zeroes_and_masks_what_it_says(arm):
  target, clean = clean_targets(arm)
  zeroed = np.all(target == 0, axis=(1, 2, 3))
  unchanged = np.all(np.abs(target - clean) < 1e-6, axis=(1, 2, 3))
  masked = ~zeroed & ~unchanged
  zeroes, masks = arm in ("c_sfm_zero", "d_zero_only"), arm in ("b_sfm_keep", "c_sfm_zero")
  if arm == "e_sfm_all":
    assert masked.all()
    return
  for images, expected in ((zeroed, zeroes), (masked, masks)):  # rate 0.5: about half of 64
    assert (16 <= images.sum() <= 48) if expected else not images.any(), (arm, images.sum())


def test_ablation_table_is_the_mean_and_std_over_seeds(tmp_path):
  rng = np.random.default_rng(0)
  rows = [{"arm": arm, "seed": seed, "sigma": sigma, "psnr": float(rng.normal(25, 1)),
           "ssim": float(rng.uniform())}
          for arm in ("a_plain", "c_sfm_zero") for seed in range(3) for sigma in (15.0, 50.0)]
  table = sfm_ablation.mean_std(rows, "psnr")
  values = [r["psnr"] for r in rows if r["arm"] == "c_sfm_zero" and r["sigma"] == 50.0]
  assert table["c_sfm_zero"][50.0] == pytest.approx((np.mean(values), np.std(values, ddof=1)))
  text = sfm_ablation.markdown_table(rows)
  assert f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}" in text
  sfm_ablation.write_report(rows, tmp_path)
  assert (tmp_path / "psnr_gain.png").stat().st_size > 10_000
  assert len((tmp_path / "results.csv").read_text().splitlines()) == len(rows) + 1


def test_paired_differences_are_per_seed_with_a_t_interval():
  """Arm − A on the same seed; a seed the baseline lacks is left out; 95% t half-width."""
  rng = np.random.default_rng(1)
  psnr = {(arm, seed): float(rng.normal(25, 1)) for arm in ("a_plain", "b_sfm_keep")
          for seed in range(5)}
  rows = [{"arm": arm, "seed": seed, "sigma": 50.0, "psnr": value, "ssim": 0.5}
          for (arm, seed), value in psnr.items() if (arm, seed) != ("a_plain", 4)]
  mean, half, n = sfm_ablation.paired_differences(rows)["b_sfm_keep"][50.0]
  diffs = [psnr["b_sfm_keep", s] - psnr["a_plain", s] for s in range(4)]
  assert n == 4 and mean == pytest.approx(np.mean(diffs))
  assert half == pytest.approx(3.1824463 * np.std(diffs, ddof=1) / 2)  # t(0.975, 3 dof), √4
  assert f"{np.mean(diffs):+.2f} ± {half:.2f} (4)" in sfm_ablation.paired_table(rows)


def test_band_errors_of_an_identity_denoiser_are_the_flat_white_noise(tiny_folder, tmp_path):
  """A 'denoiser' that returns its input errs by the white test noise itself: σ² in every band
  (clamping at 0 and 1 is rare at σ = 10 on these crops)."""
  from sfm_jax.models import get_model
  from sfm_jax.weights import save_weights

  save_weights(tmp_path / "identity.msgpack", get_model("dct_denoiser", patch=4, ratio=0.0),
               "dct_denoiser", {"patch": 4, "ratio": 0.0})
  sfm_bands.main(["--test_data", str(tiny_folder), "--out", str(tmp_path / "out"), "--model",
                  f"identity={tmp_path / 'identity.msgpack'}", "--sigmas", "10"])
  rows = list(csv.DictReader(open(tmp_path / "out" / "bands.csv")))
  assert len(rows) == sfm_bands.NUM_BINS
  mse = np.array([float(r["mse"]) for r in rows])
  np.testing.assert_allclose(np.median(mse), (10 / 255) ** 2, rtol=0.15)
  assert (tmp_path / "out" / "bands.png").stat().st_size > 10_000


def test_reproduction_table_puts_the_published_means_beside_ours():
  ours = {run: {f"{s:g}": {"psnr": p + 0.5, "ssim": 0.5}
                for s, p in zip(sfm_reproduce.SIGMAS, sfm_reproduce.AUTHORS[base], strict=True)}
          for run, base in (("dncnn_b", "dncnn_b"), ("dncnn_b_sfm_zeroed", "dncnn_b_sfm_zeroed"),
                            ("dncnn_b_sfm_kept", "dncnn_b"))}
  text = sfm_reproduce.comparison(ours, (50, 100))
  assert "| dncnn_b | 25.38 / 24.88 | 16.85 / 16.35 |" in text
  assert "| dncnn_b_sfm_zeroed | +0.21 / +0.21 | +1.52 / +1.52 |" in text  # the published gains
  assert "| dncnn_b_sfm_kept | +0.00 | +0.00 |" in text  # no published run to compare with


@pytest.mark.slow
def test_reproduction_smoke_run_trains_and_tests_every_recipe(tmp_path):
  out = subprocess.run([sys.executable, "studies/sfm_reproduce.py", "--smoke", "--out",
                        str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=1800)
  assert out.returncode == 0, out.stderr[-3000:]
  lines = (tmp_path / "psnr.csv").read_text().splitlines()
  assert len(lines) == 1 + len(sfm_reproduce.RUNS) * len(sfm_reproduce.SMOKE_SIGMAS)
  assert "memnet_sfm_zeroed" in (tmp_path / "comparison.md").read_text()


def test_mean_spectrum_of_white_noise_is_flat_at_its_variance():
  """White noise of variance v has power v at every frequency, on any image size."""
  rng = np.random.default_rng(0)
  images = [rng.normal(0, 0.1, (h, w, 1)) for h, w in ((96, 128), (120, 80)) * 4]
  frequencies, power = sr_hole.mean_spectrum(images)
  assert frequencies.shape == power.shape == (sr_hole.NUM_BINS,)
  np.testing.assert_allclose(power[4:], 0.01, rtol=0.25)
  assert abs(np.mean(power[4:]) - 0.01) < 0.0005


@pytest.mark.slow
def test_sr_hole_smoke_run_writes_the_table_and_the_spectra(tiny_folder, tmp_path):
  steps = ["--override=--config.train.steps=2", "--override=--config.train.batch_size=4",
           "--override=--config.train.require_improvement=false"]
  out = subprocess.run([sys.executable, "studies/sr_hole.py", "--train_data", str(tiny_folder),
                        "--test_data", str(tiny_folder), "--out", str(tmp_path), *steps],
                       cwd=ROOT, capture_output=True, text=True, timeout=1800)
  assert out.returncode == 0, out.stderr[-3000:]
  table = (tmp_path / "psnr.md").read_text()
  assert "| RRDB, SFM (central, 0.5) |" in table and "| bicubic |" in table
  with open(tmp_path / "spectra.csv", newline="") as f:
    rows = list(csv.reader(f))
  assert len(rows) == 1 + sr_hole.NUM_BINS and {len(row) for row in rows} == {5}


def _zoo_run(zoo, name, dataset, psnr_by_sigma):
  folder = zoo / name.replace(":", "_") / dataset
  folder.mkdir(parents=True)
  summary = {"per_sigma": {f"{s:g}": {"psnr": v} for s, v in psnr_by_sigma.items()}}
  (folder / "summary.json").write_text(json.dumps(summary))


def test_docs_tables_put_the_published_values_beside_ours(tmp_path):
  """A zoo run 0.01 dB above the release's N2N means fills the n2n_bsd68 block with both; a
  table without runs keeps its block; every block named in TABLES exists in its doc."""
  published = docs_tables.published()
  release = published["n2n_bsd68"]["sfm:n2n_unet"]
  _zoo_run(tmp_path, "sfm:n2n_unet", "BSD68", {float(s): v + 0.01 for s, v in release.items()})
  texts = docs_tables.render(tmp_path)
  block = texts["reproduction.md"].split("<!-- table: n2n_bsd68 -->")[1].split("<!-- end")[0]
  assert f"| 10 | {release['10'] + 0.01:.2f} / {release['10']:.2f} |" in block
  assert "Largest difference to the published mean: 0.010 dB." in block
  assert "| – / 32.55 |" in block  # the SFM model has no run here
  unchanged = (ROOT / "docs" / "model_zoo.md").read_text()
  assert texts["model_zoo.md"] == unchanged  # sfm_bsd68 has no runs under tmp_path
  assert len(published["fmd"]["sfm:n2s_fmd_sfm"]) >= 60  # 12 groups + test_mix × 5 levels


def _ablation_run(study, arm, seed, per_sigma):
  """A finished run of the ablation study: STUDY/ARM/seedS/eval/summary.json."""
  folder = study / arm / f"seed{seed}" / "eval"
  folder.mkdir(parents=True)
  summary = {"per_sigma": {f"{s:g}": {"psnr": p, "ssim": p / 100} for s, p in per_sigma.items()}}
  (folder / "summary.json").write_text(json.dumps(summary))


def _docs_copy(tmp_path):
  """A copy of docs/ to rewrite (docs_tables --docs)."""
  import shutil

  return pathlib.Path(shutil.copytree(ROOT / "docs", tmp_path / "docs"))


def _block(text, name):
  return text.split(f"<!-- table: {name} -->\n")[1].split("<!-- end table -->")[0]


def test_docs_tables_regenerate_the_ablation_blocks_from_a_runs_folder(tmp_path):
  """Fake runs of arms A and C (C has one seed more, which pairs with nothing): the paired
  block holds C − A by seed with its t half-width, the means block the seed counts; the CSV
  beside the docs and the gain plot are written; the paper regime's blocks, without runs, keep
  their text; a second pass finds nothing stale."""
  psnr = {("a_plain", 0): 20.0, ("a_plain", 1): 21.0, ("a_plain", 2): 19.5,
          ("c_sfm_zero", 0): 21.0, ("c_sfm_zero", 1): 22.5, ("c_sfm_zero", 2): 20.1,
          ("c_sfm_zero", 3): 30.0}
  for (arm, seed), value in psnr.items():
    _ablation_run(tmp_path / "study", arm, seed,  # C − A at σ = 15: the σ = 50 ones + 2 dB
                  {15.0: value + 10 + 2 * (arm == "c_sfm_zero"), 50.0: value})
  docs = _docs_copy(tmp_path)
  before = (docs / "sfm_ablation.md").read_text()
  missing = str(tmp_path / "missing")
  args = ["--docs", str(docs), "--zoo", missing, "--bicubic", missing, "--bands", missing,
          "--ablation", str(tmp_path / "study"), "--ablation_paper", missing]
  assert docs_tables.main(args) == 0
  text = (docs / "sfm_ablation.md").read_text()
  diffs = [psnr["c_sfm_zero", s] - psnr["a_plain", s] for s in range(3)]  # 1.0, 1.5, 0.6
  half = 4.3026527 * np.std(diffs, ddof=1) / np.sqrt(3)  # t(0.975, 2 dof) · s / √3
  paired = _block(text, "sfm_ablation_paired")
  assert f"| C: {ABLATION_ARMS['c_sfm_zero']} |" in paired
  assert f"| +{np.mean(diffs):.2f} ± {half:.2f} (3) |" in paired  # σ = 50: +1.03 ± 1.12 (3)
  assert "- C − A, 95% interval: above 0 at σ = 15; 0 inside at σ = 50." in paired  # 3.03 > 1.12
  means = _block(text, "sfm_ablation_means")
  assert f"| c_sfm_zero: {ABLATION_ARMS['c_sfm_zero']} | 4 |" in means
  assert "c_sfm_zero seeds 0, 1, 2, 3" in means
  for name in ("sfm_ablation_paper_means", "sfm_ablation_paper_paired", "sfm_bands_released"):
    assert _block(text, name) == _block(before, name)
  rows = sfm_ablation.read_results(docs / "sfm_ablation_results.csv")
  assert len(rows) == 2 * len(psnr) and {r["seed"] for r in rows} == {0, 1, 2, 3}
  assert (docs / "images" / "sfm_ablation_gain.png").stat().st_size > 10_000
  assert docs_tables.main([*args, "--check"]) == 0


def test_docs_tables_merge_the_ablation_sources_in_order(tmp_path):
  """A runs folder's run replaces the CSV's for the same arm, seed and σ; the CSV's other runs
  stay; a missing source is skipped."""
  kept = {"arm": "a_plain", "seed": 0, "sigma": 50.0, "psnr": 20.0, "ssim": 0.5}
  replaced = {**kept, "seed": 1, "psnr": 1.0}
  sfm_ablation.write_results([kept, replaced], tmp_path / "results.csv")
  _ablation_run(tmp_path / "study", "a_plain", 1, {50.0: 21.0})
  rows = docs_tables.ablation_rows([str(tmp_path / "results.csv"), str(tmp_path / "study"),
                                    str(tmp_path / "missing")])
  assert [(r["seed"], r["psnr"]) for r in rows] == [(0, 20.0), (1, 21.0)]
  assert docs_tables.ablation_rows([str(tmp_path / "missing")]) is None


def test_docs_tables_band_block_gives_the_lead_per_band_group(tmp_path):
  """A model that errs half as much as its regular twin in the masks' band (a quarter in
  0.85–0.90) and the same elsewhere: the lead is 10·log10 of the error ratios, weighted by the
  bands' coefficient shares, and all the MSE it removes lies in the masks' band."""
  fraction = np.linspace(1, 3, sfm_bands.NUM_BINS)
  fraction /= fraction.sum()
  regular = np.full(sfm_bands.NUM_BINS, 1e-3)
  sfm = regular.copy()
  sfm[14:] /= 2  # D/R 0.70–1.0
  sfm[17] = regular[17] / 4  # 0.85–0.90
  rows = [*sfm_bands.rows_of("M", None, {50.0: regular}, fraction, 68),
          *sfm_bands.rows_of("M SFM", None, {50.0: sfm}, fraction, 68)]
  (tmp_path / "bands" / "released").mkdir(parents=True)
  sfm_bands.write_rows(rows, tmp_path / "bands" / "released" / "bands.csv")
  body = docs_tables.render(None, bands=tmp_path / "bands")["sfm_ablation.md"]
  block = _block(body, "sfm_bands_released")
  whole = 10 * np.log10(regular @ fraction / (sfm @ fraction))
  masks = 10 * np.log10(regular[14:] @ fraction[14:] / (sfm[14:] @ fraction[14:]))
  assert f"| M SFM − M | 50 | +{whole:.2f} | +0.00 | +0.00 | +{masks:.2f} | 0 / 0 / 100% |" in block
  assert "+6.0 at 0.85–0.90 |" in block  # 10·log10(4)
  assert f"0.7–1 (masks' band) {100 * fraction[14:].sum():.0f}%" in block
  assert "](images/sfm_bands_released.png)" in block


def test_docs_tables_rebuild_the_band_blocks_from_the_copies_beside_the_docs(tmp_path):
  """Without a runs folder, each band block is rebuilt from docs/sfm_bands_GROUP.csv, the copy
  the last regeneration wrote, and comes out as the committed text, figure redrawn."""
  docs = _docs_copy(tmp_path)
  for image in docs.glob("images/sfm_bands_*.png"):
    image.unlink()
  missing = str(tmp_path / "missing")
  args = ["--docs", str(docs), "--zoo", missing, "--bicubic", missing, "--bands", missing,
          "--niqe", missing, "--sr_hole", missing, "--ablation", missing,
          "--ablation_paper", missing]
  assert docs_tables.main([*args, "--check"]) == 0
  assert docs_tables.main(args) == 0
  committed = (ROOT / "docs" / "sfm_ablation.md").read_text()
  for group in ("released", "ablation", "ablation_paper"):
    block = _block((docs / "sfm_ablation.md").read_text(), f"sfm_bands_{group}")
    assert "| lead (dB" in block and block == _block(committed, f"sfm_bands_{group}")
    assert (docs / "images" / f"sfm_bands_{group}.png").stat().st_size > 10_000


def test_docs_tables_name_a_missing_block(tmp_path):
  """A doc without one of the marked blocks stops the script with the block's name."""
  docs = _docs_copy(tmp_path)
  text = (docs / "sfm_ablation.md").read_text()
  (docs / "sfm_ablation.md").write_text(text.replace("<!-- table: sfm_ablation_paired -->", ""))
  with pytest.raises(SystemExit, match="sfm_ablation.md has no `<!-- table: sfm_ablation_paired"):
    docs_tables.render(None, docs=docs)


def _sr_run(study, arm, psnr_by_blur, bicubic_by_blur):
  """A finished arm of studies/sr_hole.py: STUDY/ARM/eval/summary.json (SSIM = PSNR / 40)."""
  folder = study / arm / "eval"
  folder.mkdir(parents=True)
  by_blur = {f"{s:g}": {"psnr": p, "ssim": p / 40, "bicubic_psnr": bicubic_by_blur[s],
                        "bicubic_ssim": bicubic_by_blur[s] / 40}
             for s, p in psnr_by_blur.items()}
  (folder / "summary.json").write_text(json.dumps({"by_blur_sigma": by_blur}))


def test_docs_tables_regenerate_the_sr_sweep_and_hole_blocks(tmp_path):
  """Two fake SR arms: the sweep block gives their PSNR and bicubic's per blur, and the
  sentence the leads over bicubic on the training blur (σ = 1), SFM − no SFM off it and the
  blurs where bicubic beats both; the hole block waits for the spectra figure, then copies it."""
  bicubic = {0.0: 29.0, 1.0: 27.0, 2.0: 24.0}
  _sr_run(tmp_path / "sr", "no_sfm", {0.0: 23.0, 1.0: 30.8, 2.0: 25.2}, bicubic)
  _sr_run(tmp_path / "sr", "sfm", {0.0: 23.5, 1.0: 30.6, 2.0: 25.1}, bicubic)
  texts = docs_tables.render(None, sr_hole=tmp_path / "sr")
  sweep = _block(texts["reproduction.md"], "sr_sweep")
  assert "| test blur σ | 0 | 1 | 2 |" in sweep
  assert "| bicubic | 29.00 | 27.00 | 24.00 |" in sweep
  assert "| RRDB, SFM (central, 0.5) | 23.50 | 30.60 | 25.10 |" in sweep
  assert "lead bicubic by 3.80 / 3.60 dB (SFM − no SFM -0.20 dB)" in sweep
  assert "between -0.10 and +0.50 dB. Bicubic beats both networks at σ = 0." in sweep
  before = (ROOT / "docs" / "sfm_ablation.md").read_text()
  assert _block(texts["sfm_ablation.md"], "sr_hole") == _block(before, "sr_hole")
  (tmp_path / "sr" / "spectra.png").write_bytes(b"png")
  docs = _docs_copy(tmp_path)
  missing = str(tmp_path / "missing")
  assert docs_tables.main(["--docs", str(docs), "--zoo", missing, "--bicubic", missing,
                           "--bands", missing, "--niqe", missing, "--ablation", missing,
                           "--ablation_paper", missing, "--sr_hole", str(tmp_path / "sr")]) == 0
  hole = _block((docs / "sfm_ablation.md").read_text(), "sr_hole")
  assert "| RRDB, no SFM | 23.00/0.5750 | 30.80/0.7700 | 25.20/0.6300 |" in hole
  assert (docs / "images" / "sr_hole_spectra.png").read_bytes() == b"png"


def test_docs_tables_niqe_block_is_the_benchmark_output(tmp_path):
  """benchmarks/niqe.py's files give one row per image, the |difference| and the medians."""
  sys.path.insert(0, str(ROOT / "benchmarks"))
  import niqe as niqe_benchmark

  rows = [{"image": f"img{i}", "width": 64, "height": 64, "sfm_jax": 3.0 + i, "basicsr": 3.0,
           "s_per_mp_sfm_jax": 0.1 * (i + 1), "s_per_mp_basicsr": 0.4 * (i + 1)}
          for i in range(3)]
  niqe_benchmark.write_results(tmp_path / "niqe", rows, "machine: Some CPU; numpy 2")
  block = _block(docs_tables.render(None, niqe=tmp_path / "niqe")["reproduction.md"], "niqe")
  assert "| img2 | 5.0000 | 3.0000 | 2.0000 | 0.30 | 1.20 |" in block
  assert ("Median over the 3 images: 0.20 s per megapixel for sfm-jax, 0.80 for BasicSR "
          "(ratio 0.25). Machine: Some CPU; numpy 2.") in block

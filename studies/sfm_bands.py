"""Where in frequency each denoiser errs: the error of its outputs per DCT band, in the
coordinates of SFM's masks, on a test set at several noise levels.

  python studies/sfm_bands.py --test_data ../shared/data/BSD68 --out runs/sfm_bands/released \
      --model "DnCNN-B=sfm:dncnn_b" --model "DnCNN-B SFM=sfm:dncnn_b_sfm"
  python studies/sfm_bands.py --test_data ../shared/data/BSD68 --out runs/sfm_bands/ablation_paper \
      --ablation runs/sfm_ablation_paper

--model LABEL=WEIGHTS (repeatable) takes a weights file or a pretrained name; --ablation takes
the ablation study's folder and uses the weights of every finished run (eval/summary.json
written) of --seeds (default: every seed). Every image gets the noise of the denoising test
protocol (`evaluation.denoise.noisy_version`: seeded, clamped; images cut as the model's own
test cuts them, see `band_errors`), the output is clamped, and the error is binned by D/R
(D = √(i² + j²) over DCT indices, R = √(H² + W²), as the masks; `ops.dct_band_error`) into 20
bands of width 0.05. Writes

  OUT/bands.csv   model (the label, or the arm), seed (empty for --model), sigma, band_low,
                  band_high, fraction (the band's share of an image's coefficients), mse (mean
                  over the images of the error per coefficient), images
  OUT/bands.png   per σ: each model's error per band (dB; arms: mean over their seeds), the
                  targeted masks' band (radius 0.85 ± 0.15) shaded

bands.csv is rewritten after each model, and a model (and seed) it already holds for the same σ
and number of images is not run again: rerunning the command continues an interrupted run or
adds models. `studies/docs_tables.py --bands` turns the results into the doc's tables and plots.
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import time

import numpy as np
from tqdm import tqdm

from sfm_jax import ops, pretrained
from sfm_jax.config_base import ABLATION_ARMS
from sfm_jax.data.images import load_source
from sfm_jax.evaluation.denoise import Protocol, noisy_version
from sfm_jax.inference import make_apply, restore_image
from sfm_jax.weights import load_model

NUM_BINS = 20
TARGETED_BAND = (0.70, 1.0)  # radius 0.85 ± σ 0.15 of the targeted masks
FIELDS = ["model", "seed", "sigma", "band_low", "band_high", "fraction", "mse", "images"]


def band_errors(weights: str, images, sigmas, num_bins: int = NUM_BINS
                ) -> tuple[dict[float, np.ndarray], np.ndarray]:
  """({σ: (num_bins,) mean over `images` of the output's error per band}, (num_bins,) each
  band's share of the coefficients) for one model. Images are cut as the model's own test cuts
  them (`eval.crop_odd_first` of its weights: the N2N U-Nets' first row / column of odd-sized
  images); the noise is the same for every model."""
  model, card, stored = load_model(pretrained.resolve(weights))
  crop = stored.metadata.get("eval", {}).get("crop_odd_first", False)
  apply, protocol = make_apply(model), Protocol(sigmas=tuple(sigmas))
  errors, shapes = {float(s): [] for s in sigmas}, []
  for index, (_, image) in enumerate(tqdm(images, desc=weights, leave=False)):
    clean = image.astype(np.float32) / 255.0
    clean = clean[clean.shape[0] % 2:, clean.shape[1] % 2:] if crop else clean
    shapes.append(clean.shape[:2])
    for sigma in protocol.sigmas:
      noisy = noisy_version(clean, sigma, index, protocol)
      restored = np.clip(restore_image(apply, noisy, sigma / 255.0,
                                       multiple=card.size_multiple), 0.0, 1.0)
      errors[sigma].append(np.asarray(ops.dct_band_error(restored, clean, num_bins)))
  means = {sigma: np.mean(rows, axis=0) for sigma, rows in errors.items()}
  return means, band_fractions(shapes, num_bins)


def band_fractions(shapes, num_bins: int = NUM_BINS) -> np.ndarray:
  """(num_bins,) each band's share of an image's DCT coefficients, mean over the images'
  (height, width) `shapes`."""
  shares = [np.bincount(ops.sfm_band_index(h, w, num_bins).ravel(), minlength=num_bins) / (h * w)
            for h, w in shapes]
  return np.mean(shares, axis=0)


def rows_of(model: str, seed: int | None, errors: dict[float, np.ndarray],
            fractions: np.ndarray, num_images: int) -> list[dict]:
  """bands.csv rows of one model (and seed): one per σ and band."""
  return [{"model": model, "seed": seed, "sigma": sigma,
           "band_low": k / len(mse), "band_high": (k + 1) / len(mse),
           "fraction": float(fractions[k]), "mse": float(mse[k]), "images": num_images}
          for sigma, mse in errors.items() for k in range(len(mse))]


def read_rows(path: pathlib.Path) -> list[dict]:
  """The rows of a bands.csv, typed (seed None for a --model entry); [] if it is missing."""
  if not path.is_file():
    return []
  with open(path, newline="") as f:
    return [{"model": r["model"], "seed": int(r["seed"]) if r["seed"] else None,
             "sigma": float(r["sigma"]), "band_low": float(r["band_low"]),
             "band_high": float(r["band_high"]), "fraction": float(r["fraction"]),
             "mse": float(r["mse"]), "images": int(r["images"])} for r in csv.DictReader(f)]


def write_rows(rows: list[dict], path: pathlib.Path):
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows({**r, "seed": "" if r["seed"] is None else r["seed"]} for r in rows)


def errors_by_run(rows: list[dict]) -> dict[tuple[str, int | None], dict[float, np.ndarray]]:
  """{(model, seed): {σ: (bins,) mse in band order}} of bands.csv rows."""
  table = {}
  for r in sorted(rows, key=lambda r: r["band_low"]):
    table.setdefault((r["model"], r["seed"]), {}).setdefault(r["sigma"], []).append(r["mse"])
  return {run: {s: np.array(v) for s, v in per_sigma.items()} for run, per_sigma in table.items()}


def mean_over_seeds(rows: list[dict]) -> dict[str, dict[float, np.ndarray]]:
  """{model: {σ: (bins,) mse}}, the mean over the model's seeds (arms) of its band errors."""
  by_model = {}
  for (model, _), per_sigma in errors_by_run(rows).items():
    for sigma, mse in per_sigma.items():
      by_model.setdefault(model, {}).setdefault(sigma, []).append(mse)
  return {model: {s: np.mean(v, axis=0) for s, v in sorted(per_sigma.items())}
          for model, per_sigma in by_model.items()}


def display_name(model: str) -> str:
  """An ablation arm as 'B: its description'; any other label as it is."""
  return f"{model[0].upper()}: {ABLATION_ARMS[model]}" if model in ABLATION_ARMS else model


def plot_errors(axes, results: dict[str, dict[float, np.ndarray]], sigmas):
  """On one axis per σ: each model's error per band in dB, the targeted masks' band shaded."""
  for ax, sigma in zip(axes, sigmas, strict=True):
    ax.axvspan(*TARGETED_BAND, color="0.9", zorder=0, label="targeted masks' band")
    for label, per_sigma in results.items():
      errors = per_sigma[sigma]
      centres = (np.arange(len(errors)) + 0.5) / len(errors)
      ax.plot(centres, 10 * np.log10(errors), marker=".", label=display_name(label))
    ax.set(title=f"σ = {sigma:g}", xlabel="DCT band D/R")
  axes[0].set_ylabel("error per coefficient (dB)")


def lay_out_with_legend_below(fig, ax):
  """The legend of `ax` (one entry per model) in a row under all the axes, then tight_layout
  in the space above it: inside one axis it would hide the curves."""
  handles, labels = ax.get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
  rows = -(-len(labels) // 3)
  fig.tight_layout(rect=(0, 0.2 * rows / fig.get_figheight(), 1, 1))


def plot(results: dict[str, dict[float, np.ndarray]], path: pathlib.Path):
  """bands.png: per σ, each model's error per band (`plot_errors`)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  sigmas = sorted(next(iter(results.values())))
  fig, axes = plt.subplots(1, len(sigmas), figsize=(3.2 * len(sigmas), 3.4), squeeze=False)
  plot_errors(list(axes[0]), results, sigmas)
  lay_out_with_legend_below(fig, axes[0][0])
  fig.savefig(path, dpi=120)
  plt.close(fig)


def in_band(band_low: np.ndarray, band: tuple[float, float]) -> np.ndarray:
  """Which bands (by their lower edge) lie in `band` (D/R from, to)."""
  return (band_low >= band[0] - 1e-9) & (band_low < band[1] - 1e-9)


def group_error(fraction: np.ndarray, mse: np.ndarray, band_low: np.ndarray,
                band: tuple[float, float]) -> float:
  """The error per coefficient over the bands that lie in `band` (D/R from, to), each band
  weighted by its share of the coefficients; over (0, 1): the pixel MSE (Parseval)."""
  inside = in_band(band_low, band)
  return float(np.sum(fraction[inside] * mse[inside]) / np.sum(fraction[inside]))


def band_scores(rows: list[dict], groups: dict[str, tuple[float, float]]) -> list[dict]:
  """One row per (model, seed, σ) of bands.csv rows: "arm", "seed" (0 for a --model entry),
  "sigma", and −10·log10 of the error in each band ("band0", "band1", …) and in each of
  `groups` (its name), so that a difference between two models is the one's lead in dB."""
  table = {}
  for r in sorted(rows, key=lambda r: r["band_low"]):
    key = (r["model"], r["seed"], r["sigma"])
    table.setdefault(key, []).append((r["band_low"], r["fraction"], r["mse"]))
  scores = []
  for (model, seed, sigma), bands in table.items():
    band_low, fraction, mse = (np.array(column) for column in zip(*bands, strict=True))
    score = {"arm": model, "seed": 0 if seed is None else seed, "sigma": sigma}
    score.update({f"band{k}": float(-10 * np.log10(e)) for k, e in enumerate(mse)})
    score.update({name: -10 * np.log10(group_error(fraction, mse, band_low, band))
                  for name, band in groups.items()})
    scores.append(score)
  return scores


def finished_weights(folder: pathlib.Path, arm: str, seeds) -> dict[int, pathlib.Path]:
  """{seed: weights} of the arm's finished runs (tested: eval/summary.json exists) in an
  ablation study folder, only `seeds` if given."""
  found = {}
  for summary in sorted(folder.glob(f"{arm}/seed*/eval/summary.json")):
    seed, weights = int(summary.parents[1].name.removeprefix("seed")), summary.parents[1]
    if (weights / "weights.msgpack").is_file() and (not seeds or seed in seeds):
      found[seed] = weights / "weights.msgpack"
  return found


def models_of(args) -> list[tuple[str, int | None, str]]:
  """[(label or arm, seed or None, weights)] from --model and --ablation."""
  models = [(label, None, weights) for label, weights in
            (spec.split("=", 1) for spec in args.model)]
  if args.ablation:
    for arm in ABLATION_ARMS:
      models += [(arm, seed, str(weights)) for seed, weights in
                 finished_weights(pathlib.Path(args.ablation), arm, args.seeds).items()]
  if not models:
    raise SystemExit("error: give --model LABEL=WEIGHTS or an --ablation folder with finished "
                     "runs.")
  return models


def is_done(rows: list[dict], model: str, seed: int | None, sigmas, num_images: int) -> bool:
  """Whether `rows` hold the model (and seed) at every σ of `sigmas` on `num_images` images."""
  held = {r["sigma"] for r in rows if r["model"] == model and r["seed"] == seed
          and r["images"] == num_images}
  return {float(s) for s in sigmas} <= held


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--test_data", required=True, help="Test image folder (BSD68).")
  parser.add_argument("--out", default="runs/sfm_bands", help="Output folder.")
  parser.add_argument("--model", action="append", default=[], help="LABEL=WEIGHTS (repeatable).")
  parser.add_argument("--ablation", help="The ablation study's folder (its arms' weights).")
  parser.add_argument("--seeds", type=int, nargs="*", default=[],
                      help="The ablation seeds to use (default: every finished one).")
  parser.add_argument("--sigmas", type=float, nargs="+", default=[25, 50, 75, 100])
  parser.add_argument("--max_images", type=int, default=0, help="> 0: only the first N images.")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  images = load_source(args.test_data, "val", 1)
  images = images[:args.max_images] if args.max_images > 0 else images
  rows = read_rows(out / "bands.csv")
  for model, seed, weights in models_of(args):
    if is_done(rows, model, seed, args.sigmas, len(images)):
      continue
    start = time.time()
    errors, fractions = band_errors(weights, images, args.sigmas)
    rows = [r for r in rows if (r["model"], r["seed"]) != (model, seed)]
    rows += rows_of(model, seed, errors, fractions, len(images))
    write_rows(rows, out / "bands.csv")
    print(json.dumps({"model": model, "seed": seed, "weights": weights, "images": len(images),
                      "seconds": round(time.time() - start)}), flush=True)
  plot(mean_over_seeds(rows), out / "bands.png")
  print(f"Wrote {out / 'bands.csv'} and {out / 'bands.png'}.")


if __name__ == "__main__":
  main()

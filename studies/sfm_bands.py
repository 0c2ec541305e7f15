"""Where in frequency each denoiser errs: the error of its outputs per DCT band, in the
coordinates of SFM's masks, on a test set at several noise levels.

  python studies/sfm_bands.py --test_data ../shared/data/BSD68 --out runs/sfm_bands \
      --model "DnCNN-B=sfm:dncnn_b" --model "DnCNN-B SFM=sfm:dncnn_b_sfm"
  python studies/sfm_bands.py --test_data ../shared/data/BSD68 --out runs/sfm_bands_arms \
      --ablation runs/sfm_ablation_paper --seed 0

--model LABEL=WEIGHTS (repeatable) takes a weights file or a pretrained name; --ablation takes
the ablation study's folder and uses every arm's weights of --seed. Every image gets the noise
of the denoising test protocol (`evaluation.denoise.noisy_version`: seeded, clamped), the output
is clamped, and the error is binned by D/R (D = √(i² + j²) over DCT indices, R = √(H² + W²), as
the masks; `ops.dct_band_error`) into 20 bands of width 0.05. Writes

  OUT/bands.csv   model, sigma, band_low, band_high, mse (mean over the images)
  OUT/bands.png   per σ: each model's error per band (dB), the targeted masks' band
                  (radius 0.85 ± 0.15) shaded

The SFM DnCNN-B and MemNet drop the band around D/R = 0.85 (targeted mode) in half their
training images; the plot shows whether their lead at high σ lies there.
"""

from __future__ import annotations

import argparse
import csv
import pathlib

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


def band_errors(weights: str, images, sigmas, num_bins: int = NUM_BINS) -> dict[float, np.ndarray]:
  """{σ: (num_bins,) mean over `images` of the output's error per band} for one model."""
  model, card, _ = load_model(pretrained.resolve(weights))
  apply, protocol = make_apply(model), Protocol(sigmas=tuple(sigmas))
  errors = {float(s): [] for s in sigmas}
  for index, (_, image) in enumerate(tqdm(images, desc=weights, leave=False)):
    clean = image.astype(np.float32) / 255.0
    for sigma in protocol.sigmas:
      noisy = noisy_version(clean, sigma, index, protocol)
      restored = np.clip(restore_image(apply, noisy, sigma / 255.0,
                                       multiple=card.size_multiple), 0.0, 1.0)
      errors[sigma].append(np.asarray(ops.dct_band_error(restored, clean, num_bins)))
  return {sigma: np.mean(rows, axis=0) for sigma, rows in errors.items()}


def rows_of(results: dict[str, dict[float, np.ndarray]]) -> list[dict]:
  return [{"model": label, "sigma": sigma, "band_low": k / len(errors),
           "band_high": (k + 1) / len(errors), "mse": float(mse)}
          for label, per_sigma in results.items() for sigma, errors in per_sigma.items()
          for k, mse in enumerate(errors)]


def plot(results: dict[str, dict[float, np.ndarray]], path: pathlib.Path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  sigmas = sorted(next(iter(results.values())))
  fig, axes = plt.subplots(1, len(sigmas), figsize=(3.2 * len(sigmas), 3.2), sharey=False)
  for ax, sigma in zip(np.atleast_1d(axes), sigmas, strict=True):
    ax.axvspan(*TARGETED_BAND, color="0.9", label="targeted masks' band")
    for label, per_sigma in results.items():
      errors = per_sigma[sigma]
      centres = (np.arange(len(errors)) + 0.5) / len(errors)
      ax.plot(centres, 10 * np.log10(errors), marker=".", label=label)
    ax.set(title=f"σ = {sigma:g}", xlabel="DCT band D/R")
  np.atleast_1d(axes)[0].set_ylabel("error per coefficient (dB)")
  np.atleast_1d(axes)[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def models_of(args) -> dict[str, str]:
  """{label: weights} from --model and --ablation."""
  models = dict(spec.split("=", 1) for spec in args.model)
  if args.ablation:
    for arm, description in ABLATION_ARMS.items():
      weights = pathlib.Path(args.ablation) / arm / f"seed{args.seed}" / "weights.msgpack"
      if weights.is_file():
        models[f"{arm[0].upper()}: {description}"] = str(weights)
  if not models:
    raise SystemExit("error: give --model LABEL=WEIGHTS or an --ablation folder with weights.")
  return models


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--test_data", required=True, help="Test image folder (BSD68).")
  parser.add_argument("--out", default="runs/sfm_bands", help="Output folder.")
  parser.add_argument("--model", action="append", default=[], help="LABEL=WEIGHTS (repeatable).")
  parser.add_argument("--ablation", help="The ablation study's folder (its arms' weights).")
  parser.add_argument("--seed", type=int, default=0, help="The ablation seed to use.")
  parser.add_argument("--sigmas", type=float, nargs="+", default=[25, 50, 75, 100])
  parser.add_argument("--max_images", type=int, default=0, help="> 0: only the first N images.")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  images = load_source(args.test_data, "val", 1)
  images = images[:args.max_images] if args.max_images > 0 else images
  results = {label: band_errors(weights, images, args.sigmas)
             for label, weights in models_of(args).items()}
  with open(out / "bands.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=["model", "sigma", "band_low", "band_high", "mse"])
    writer.writeheader()
    writer.writerows(rows_of(results))
  plot(results, out / "bands.png")
  print(f"Wrote {out / 'bands.csv'} and {out / 'bands.png'}.")


if __name__ == "__main__":
  main()

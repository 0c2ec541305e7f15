"""The SFM paper's SR "hole" experiment, CPU-sized: a super-resolver trained with one fixed blur
leaves a band of frequencies missing when the test blur is wider; SFM is meant to fill it.

  python studies/sr_hole.py --train_data BSD400 --test_data Set14 --out runs/sr_hole

Trains the small RRDBNet ×2 of configs/sr_sfm_study.py (gray, Gaussian blur σ = 1.0, 21×21,
then MATLAB bicubic ↓2) without SFM and with SFM (central mode, rate 0.5), tests both with
eval.py over a sweep of test blurs (narrower and wider than the training one), then averages
over the test set the radial power spectra of the HR images, of the HR blurred with the wide
test kernel (the LR before downsampling), and of both networks' outputs. Writes

  OUT/psnr.md           PSNR/SSIM per test blur σ: bicubic, no SFM, SFM
  OUT/ARM/eval/         eval.py's output for each network (summary.json: means per blur σ)
  OUT/spectra.png       the four mean spectra on a log scale (the paper's figure)
  OUT/spectra.csv       frequency (cycles/pixel) and the four mean powers
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib

import numpy as np
from _runs import study_folders, study_parser, train_then_test

from sfm_jax import ops
from sfm_jax.data.images import crop_to_multiple, load_folder
from sfm_jax.evaluation.sr import degrade_sr
from sfm_jax.inference import make_upscaler
from sfm_jax.metrics import quantize
from sfm_jax.weights import load_weights

ARMS = {"no_sfm": "--config.task.sfm_rate=0.0", "sfm": "--config.task.sfm_rate=0.5"}
LABELS = {"no_sfm": "no SFM", "sfm": "SFM (central, 0.5)"}
SCALE, KERNEL_SIZE = 2, 21
NUM_BINS = 48


def mean_spectrum(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """(frequencies (NUM_BINS,), mean radial power over the images (NUM_BINS,)) of (H, W, 1)
  images of any sizes: each image's spectrum is taken on its own grid, then averaged."""
  powers = []
  for image in images:
    frequencies, power = ops.radial_power_spectrum(np.asarray(image, np.float32)[None],
                                                   num_bins=NUM_BINS)
    powers.append(np.asarray(power)[0, :, 0])
  return np.asarray(frequencies), np.mean(powers, axis=0)


def spectra(weights: dict[str, pathlib.Path], test_data: str, blur_sigma: float) -> dict:
  """{curve name: mean spectrum} at test blur σ: HR, blurred HR, and each network's output."""
  hrs = [crop_to_multiple(image, SCALE) for _, image in load_folder(test_data, channels=1)]
  blurred = [np.asarray(ops.blur(hr[None], ops.gaussian_kernel(KERNEL_SIZE, blur_sigma))[0])
             for hr in hrs]
  curves = {"HR": hrs, f"HR blurred (σ={blur_sigma:g}), before ↓{SCALE}": blurred}
  lrs = [degrade_sr(hr, SCALE, blur_sigma, KERNEL_SIZE) for hr in hrs]
  for arm, path in weights.items():
    upscale = make_upscaler(load_weights(path)[0])
    curves[f"output, {LABELS[arm]}"] = [quantize(upscale(lr)) for lr in lrs]
  return {name: mean_spectrum(images) for name, images in curves.items()}


def plot(curves: dict, path: pathlib.Path, blur_sigma: float):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4))
  for name, (frequencies, power) in curves.items():
    ax.semilogy(frequencies, power, label=name)
  ax.set(xlabel="radial frequency (cycles/pixel)", ylabel="mean power",
         title=f"Radial power spectra, test blur σ={blur_sigma:g} (trained at 1.0)")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def psnr_table(summaries: dict[str, dict], ssim: bool = True) -> str:
  """Markdown: bicubic and each arm's PSNR (/SSIM) per test blur σ, of {arm: eval.py's
  "by_blur_sigma"}."""
  def cell(means: dict, prefix: str) -> str:
    psnr = f"{means[prefix + 'psnr']:.2f}"
    return f"{psnr}/{means[prefix + 'ssim']:.4f}" if ssim else psnr

  sigmas = sorted(next(iter(summaries.values())), key=float)
  lines = ["| test blur σ | " + " | ".join(sigmas) + " |", "|---|" + "---|" * len(sigmas)]
  first = next(iter(summaries.values()))
  lines.append("| bicubic | " + " | ".join(cell(first[s], "bicubic_") for s in sigmas) + " |")
  for arm, summary in summaries.items():
    lines.append(f"| RRDB, {LABELS[arm]} | " + " | ".join(cell(summary[s], "") for s in sigmas)
                 + " |")
  return "\n".join(lines) + "\n"


def read_summaries(out: pathlib.Path) -> dict[str, dict] | None:
  """{arm: eval.py's means per blur σ} of a finished study folder, None if an arm is missing."""
  paths = {arm: out / arm / "eval" / "summary.json" for arm in ARMS}
  if not all(path.is_file() for path in paths.values()):
    return None
  return {arm: json.loads(path.read_text())["by_blur_sigma"] for arm, path in paths.items()}


def parse_args(argv=None) -> argparse.Namespace:
  parser = study_parser(__doc__, "runs/sr_hole", "Set14")
  parser.add_argument("--test_blurs", default="0,0.5,1,1.5,2,2.5,3",
                      help="Test blur σs (the training blur is 1.0).")
  parser.add_argument("--wide_blur", type=float, default=2.0, help="Test blur σ of the spectra.")
  parser.add_argument("--override", action="append", default=[],
                      help="An extra config override for both training runs (repeatable).")
  return parser.parse_args(argv)


def main():
  args = parse_args()
  out, train_data, test_data = study_folders(args)
  summaries = {arm: train_then_test("sr_sfm_study.py", out / arm, train_data, test_data,
                                    [flag, *args.override],
                                    [f"--config.eval.blur_sigmas={args.test_blurs}"]
                                    )["by_blur_sigma"]
               for arm, flag in ARMS.items()}
  (out / "psnr.md").write_text(psnr_table(summaries))
  curves = spectra({arm: out / arm / "weights.msgpack" for arm in ARMS}, test_data,
                   args.wide_blur)
  plot(curves, out / "spectra.png", args.wide_blur)
  with open(out / "spectra.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["frequency", *curves])
    frequencies = next(iter(curves.values()))[0]
    writer.writerows([[f"{v:.5f}", *(f"{power[i]:.6g}" for _, power in curves.values())]
                      for i, v in enumerate(frequencies)])
  print((out / "psnr.md").read_text())
  print(json.dumps({"wrote": [str(out / n) for n in ("psnr.md", "spectra.png", "spectra.csv")]}))


if __name__ == "__main__":
  main()

"""Compare our BSD68 results for the SFM authors' checkpoints with their published CSVs.

  python benchmarks/zoo_table.py --ours DIR --authors DIR [RUN ...]

--ours holds one eval.py output folder per run (RUN/summary.json); --authors holds the authors'
per-image tables as RUN.csv (their `Denoising/PSNR_results/RUN/PSNR_0.csv`: 68 rows, columns
0..19 for σ = 5, 10, …, 100). Prints a markdown table of mean PSNR, ours beside theirs, and the
largest difference.
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib

import numpy as np

RUNS = ("gray_DnCNN_55_SFMm0_0.00_Noise0_GT0",
        "gray_DnCNN_55_SFMm2_0.50_Noise0_GT0_rad_0.85_radsig_0.15",
        "gray_MemNet_55_SFMm0_0.00_Noise0_GT0",
        "gray_MemNet_55_SFMm2_0.50_Noise0_GT0_rad_0.85_radsig_0.15")


def authors_means(path: pathlib.Path) -> dict[float, float]:
  rows = list(csv.reader(open(path)))[1:]
  table = np.array([[float(v) for v in row] for row in rows])
  return {5.0 * (i + 1): float(table[:, i].mean()) for i in range(table.shape[1])}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--ours", type=pathlib.Path, required=True)
  parser.add_argument("--authors", type=pathlib.Path, required=True)
  parser.add_argument("runs", nargs="*", default=RUNS)
  args = parser.parse_args()
  worst = 0.0
  lines = []
  for run in args.runs:
    ours = json.loads((args.ours / run / "summary.json").read_text())["per_sigma"]
    theirs = authors_means(args.authors / f"{run}.csv")
    sigmas = sorted(float(s) for s in ours)
    if not lines:
      lines.append("| checkpoint | " + " | ".join(f"σ={s:g} ours / authors" for s in sigmas) + " |")
      lines.append("|---" * (len(sigmas) + 1) + "|")
    cells = []
    for s in sigmas:
      mine, published = ours[f"{s:g}"]["psnr"], theirs[s]
      worst = max(worst, abs(mine - published))
      cells.append(f"{mine:.2f} / {published:.2f}")
    lines.append(f"| `{run}` | " + " | ".join(cells) + " |")
  print("\n".join(lines))
  print(f"\nlargest |ours − authors|: {worst:.3f} dB")


if __name__ == "__main__":
  main()

"""The SFM paper's denoising recipes end to end, beside the authors' published BSD68 means.

  python studies/sfm_reproduce.py --train_data BSD400 --test_data BSD68 --out runs/reproduce
  python studies/sfm_reproduce.py --smoke --out /tmp/reproduce_smoke   # minutes on a CPU

Trains DnCNN-B and MemNet (configs/dncnn_b.py, memnet.py), each regular, with SFM as the paper
describes (unselected images kept: configs/*_sfm.py) and with SFM as the released scripts run it
(unselected images zeroed), then tests every run on BSD68 at σ = 5, 10, …, 100 with the SFM test
protocol (eval.py). Meant for a GPU: the recipes are 50 epochs of BSD400 at batch 128 (about
2–4 GPU-hours per run; a CPU would take weeks). Writes OUT/comparison.md (ours beside the authors'
means, the SFM − regular gains) and OUT/psnr.csv. A rerun skips finished runs and resumes killed
ones.

The authors' means are those of the per-image CSVs committed with majedelhelou/SFM
(`Denoising/PSNR_results/<run>/PSNR_0.csv`, 68 BSD68 images, σ = 5…100); the released SFM
checkpoints were trained with the unselected images zeroed, so they are the reference of the
"zeroed" runs.
"""

from __future__ import annotations

import argparse
import csv
import pathlib

from _runs import study_folders, study_parser, train_then_test

SIGMAS = tuple(range(5, 101, 5))
AUTHORS = {  # mean BSD68 PSNR (dB) at SIGMAS of majedelhelou/SFM Denoising/PSNR_results
    "dncnn_b": (37.19, 33.33, 31.19, 29.71, 28.59, 27.66, 26.83, 26.13, 25.48, 24.88, 24.30, 23.69,
                22.99, 22.06, 20.99, 19.86, 18.79, 17.88, 17.05, 16.35),
    "dncnn_b_sfm_zeroed": (37.04, 33.34, 31.24, 29.78, 28.65, 27.73, 26.95, 26.27, 25.66, 25.09,
                           24.55, 24.02, 23.44, 22.80, 22.07, 21.24, 20.36, 19.46, 18.62, 17.87),
    "memnet": (37.52, 33.51, 31.29, 29.75, 28.57, 27.61, 26.79, 26.06, 25.44, 24.87, 24.33, 23.83,
               23.29, 22.67, 21.91, 21.00, 19.97, 18.92, 18.00, 17.16),
    "memnet_sfm_zeroed": (36.99, 33.36, 31.26, 29.80, 28.68, 27.76, 27.00, 26.31, 25.71, 25.14,
                          24.61, 24.09, 23.59, 23.09, 22.56, 22.00, 21.40, 20.77, 20.15, 19.46),
}
# run name -> (config file, extra overrides)
RUNS = {
    "dncnn_b": ("dncnn_b.py", []),
    "dncnn_b_sfm_kept": ("dncnn_b_sfm.py", []),
    "dncnn_b_sfm_zeroed": ("dncnn_b_sfm.py", ["--config.task.sfm_unselected=zero"]),
    "memnet": ("memnet.py", []),
    "memnet_sfm_kept": ("memnet_sfm.py", []),
    "memnet_sfm_zeroed": ("memnet_sfm.py", ["--config.task.sfm_unselected=zero"]),
}
# --smoke: a few steps on a few patches of the bundled photos, tested at two σ.
SMOKE_TRAINING = ["--config.train.steps=2", "--config.train.batch_size=4",
                  "--config.data.patch_size=40", "--config.data.stride=40",
                  "--config.data.max_train_images=2", "--config.eval.max_val_images=1",
                  "--config.train.require_improvement=false"]
SMOKE_SIGMAS = (25, 50)

def published(run: str, sigma: float) -> float | None:
  """The authors' mean BSD68 PSNR of `run` at `sigma`, where they published one."""
  return AUTHORS[run][SIGMAS.index(sigma)] if run in AUTHORS and sigma in SIGMAS else None


def comparison(results: dict[str, dict], sigmas) -> str:
  """Markdown: per run and σ ours (and the authors' mean where published); then the SFM gains
  over the regular run of the same network."""
  def cell(ours: float, theirs: float | None, sign: str = "") -> str:
    return f"{ours:{sign}.2f}" + ("" if theirs is None else f" / {theirs:{sign}.2f}")

  psnr = {run: {s: per_sigma[f"{s:g}"]["psnr"] for s in sigmas}
          for run, per_sigma in results.items()}
  header = ["| run | " + " | ".join(f"σ={s:g}" for s in sigmas) + " |",
            "|---|" + "---|" * len(sigmas)]
  lines = ["PSNR (dB), ours / the authors' published mean:", "", *header]
  for run, row in psnr.items():
    lines.append(f"| {run} | " + " | ".join(cell(row[s], published(run, s)) for s in sigmas)
                 + " |")
  lines += ["", "SFM − regular (dB), ours / the authors':", "", *header]
  for run, row in psnr.items():
    regular = run.split("_sfm")[0]
    if run == regular or regular not in psnr:
      continue
    cells = []
    for s in sigmas:
      theirs = published(run, s)
      theirs = None if theirs is None else theirs - published(regular, s)
      cells.append(cell(row[s] - psnr[regular][s], theirs, "+"))
    lines.append(f"| {run} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_csv(results: dict[str, dict], path: pathlib.Path):
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["run", "sigma", "psnr", "ssim", "authors_psnr"])
    for run, per_sigma in results.items():
      for sigma, m in per_sigma.items():
        theirs = published(run, float(sigma))
        writer.writerow([run, sigma, m["psnr"], m["ssim"], "" if theirs is None else theirs])


def parse_args(argv=None) -> argparse.Namespace:
  parser = study_parser(__doc__, "runs/reproduce", "BSD68", data_required=False)
  parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
  parser.add_argument("--smoke", action="store_true", help="Two training steps per run, two "
                      "test σ: checks the whole path in minutes on a CPU (numbers mean nothing).")
  return parser.parse_args(argv)


def main():
  args = parse_args()
  out, *data = study_folders(args)
  sigmas = SMOKE_SIGMAS if args.smoke else SIGMAS
  training = SMOKE_TRAINING if args.smoke else []
  results = {}
  for run in args.runs:
    config, overrides = RUNS[run]
    results[run] = train_then_test(
        config, out / run, *data, [*overrides, *training],
        [f"--config.eval.sigmas={','.join(str(s) for s in sigmas)}"])["per_sigma"]
  (out / "comparison.md").write_text(comparison(results, sigmas))
  write_csv(results, out / "psnr.csv")
  print((out / "comparison.md").read_text())
  print(f"Wrote {out / 'comparison.md'} and {out / 'psnr.csv'}.")


if __name__ == "__main__":
  main()

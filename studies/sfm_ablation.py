"""Where does SFM's denoising gain come from? Four arms × seeds, trained and tested as a user would.

  python studies/sfm_ablation.py --train_data BSD400 --test_data BSD68 --out runs/sfm_ablation
  python studies/sfm_ablation.py --regime paper --train_data BSD400 --test_data BSD68

Each arm is a config (`configs/ablation_*.py`, built by `sfm_jax.config_base.sfm_ablation_config`):
(A) no SFM; (B) SFM with the unselected images kept (the paper); (C) SFM with the unselected
images zeroed (the released scripts); (D) the zeroing alone. Every (arm, seed) runs `train.py`,
then `eval.py` on the test folder at the config's eval.sigmas, each in its own process; a run
whose OUT/ARM/seedS/eval/summary.json exists is not run again, and train.py resumes a killed
run, so rerunning the command continues an interrupted study. At the end it writes

  OUT/results.csv    arm, seed, sigma, psnr, ssim (test-set means per run)
  OUT/table.md       each arm's PSNR minus arm A's with the same seed (same initialisation and
                     data order): mean and 95% t-interval over the seeds; then mean ± std over
                     seeds per arm and σ (PSNR, then SSIM)
  OUT/psnr_gain.png  each arm's paired PSNR difference to arm A against σ, with its 95% interval

--regime narrow (default) trains on σ ∈ [0, 25] and tests at 15–100; --regime paper trains on the
paper's blind range σ ∈ [0, 55] and tests at 15, 25, 50 (inside) and 60, 75, 90, 100 (outside).

Method and results: docs/sfm_ablation.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib

import numpy as np
from _runs import study_folders, study_parser, train_then_test
from scipy import stats

from sfm_jax.config_base import ABLATION_ARMS

# The training noise range and the test levels of each regime, as config overrides.
REGIMES = {
    "narrow": [],  # the arms' configs: σ ∈ [0, 25], tested at 15, 25, 50, 75, 100
    "paper": ["--config.task.sigma_range=(0.0,55.0)",
              "--config.eval.sigmas=(15,25,50,60,75,90,100)"],
}


def run_one(arm: str, seed: int, out: pathlib.Path, train_data: str, test_data: str,
            overrides: list[str]) -> dict:
  """Trains and tests one (arm, seed); returns the test summary's per-σ means."""
  return train_then_test(f"ablation_{arm}.py", out / arm / f"seed{seed}", train_data, test_data,
                         [f"--config.seed={seed}", *overrides])["per_sigma"]


def finished_runs(out: pathlib.Path) -> dict[tuple[str, int], dict]:
  """{(arm, seed): per-σ summary} of every finished run in the study folder."""
  return {(path.parents[2].name, int(path.parents[1].name.removeprefix("seed"))):
          json.loads(path.read_text())["per_sigma"]
          for path in sorted(out.glob("*/seed*/eval/summary.json"))
          if path.parents[2].name in ABLATION_ARMS}


def collect(results: dict[tuple[str, int], dict]) -> list[dict]:
  """Rows (arm, seed, sigma, psnr, ssim) of {(arm, seed): per-σ summary}."""
  return [{"arm": arm, "seed": seed, "sigma": float(sigma), "psnr": m["psnr"], "ssim": m["ssim"]}
          for (arm, seed), per_sigma in results.items() for sigma, m in per_sigma.items()]


def mean_std(rows: list[dict], metric: str) -> dict[str, dict[float, tuple[float, float]]]:
  """{arm: {σ: (mean, std over seeds)}} of `metric` (std with ddof=1; 0 for one seed)."""
  table = {}
  for arm in dict.fromkeys(r["arm"] for r in rows):
    for sigma in sorted({r["sigma"] for r in rows if r["arm"] == arm}):
      values = [r[metric] for r in rows if r["arm"] == arm and r["sigma"] == sigma]
      std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
      table.setdefault(arm, {})[sigma] = (float(np.mean(values)), std)
  return table


def paired_differences(rows: list[dict], baseline: str = "a_plain", metric: str = "psnr"
                       ) -> dict[str, dict[float, tuple[float, float, int]]]:
  """{arm: {σ: (mean, half-width of the 95% t-interval, seeds)}} of `metric` minus the
  baseline arm's on the same seed, over the seeds both ran (half-width NaN for one seed)."""
  value = {(r["arm"], r["seed"], r["sigma"]): r[metric] for r in rows}
  table = {}
  for arm in dict.fromkeys(r["arm"] for r in rows if r["arm"] != baseline):
    for sigma in sorted({r["sigma"] for r in rows if r["arm"] == arm}):
      diffs = [value[arm, seed, sigma] - value[baseline, seed, sigma]
               for (a, seed, s) in value if a == arm and s == sigma
               and (baseline, seed, sigma) in value]
      if not diffs:
        continue
      n = len(diffs)
      half = (float(stats.t.ppf(0.975, n - 1) * np.std(diffs, ddof=1) / np.sqrt(n))
              if n > 1 else float("nan"))
      table.setdefault(arm, {})[sigma] = (float(np.mean(diffs)), half, n)
  return table


def paired_table(rows: list[dict], baseline: str = "a_plain") -> str:
  """PSNR minus arm A's, paired by seed: mean ± 95% half-width (seeds), one row per arm."""
  table = paired_differences(rows, baseline)
  sigmas = sorted({s for per_arm in table.values() for s in per_arm})
  lines = ["| PSNR − arm A, same seed (dB) | " + " | ".join(f"σ={s:g}" for s in sigmas) + " |",
           "|---|" + "---|" * len(sigmas)]
  for arm, per_sigma in table.items():
    cells = [f"{per_sigma[s][0]:+.2f} ± {per_sigma[s][1]:.2f} ({per_sigma[s][2]})"
             if s in per_sigma else "" for s in sigmas]
    lines.append(f"| {arm[0].upper()}: {ABLATION_ARMS[arm]} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def markdown_table(rows: list[dict]) -> str:
  """PSNR and SSIM, mean ± std over seeds, one row per arm and one column per σ."""
  seeds = {r["arm"]: len({q["seed"] for q in rows if q["arm"] == r["arm"]}) for r in rows}
  lines = []
  for metric, digits in (("psnr", 2), ("ssim", 4)):
    table = mean_std(rows, metric)
    sigmas = sorted({s for per_arm in table.values() for s in per_arm})
    lines += [f"| {metric.upper()} | seeds | " + " | ".join(f"σ={s:g}" for s in sigmas) + " |",
              "|---|---|" + "---|" * len(sigmas)]
    for arm, per_sigma in table.items():
      cells = [f"{per_sigma[s][0]:.{digits}f} ± {per_sigma[s][1]:.{digits}f}" for s in sigmas]
      lines.append(f"| {arm}: {ABLATION_ARMS[arm]} | {seeds[arm]} | " + " | ".join(cells) + " |")
    lines.append("")
  return "\n".join(lines)


def plot_gain(rows: list[dict], path: pathlib.Path, baseline: str = "a_plain"):
  """Each arm's PSNR minus the baseline arm's on the same seed: mean and 95% interval."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4))
  for arm, per_sigma in paired_differences(rows, baseline).items():
    sigmas = sorted(per_sigma)
    ax.errorbar(sigmas, [per_sigma[s][0] for s in sigmas],
                yerr=[np.nan_to_num(per_sigma[s][1]) for s in sigmas], marker="o", capsize=3,
                color=f"C{list(ABLATION_ARMS).index(arm)}",  # as in the band plots
                label=f"{arm[0].upper()}: {ABLATION_ARMS[arm]}")
  ax.axhline(0, color="gray", lw=0.8)
  ax.set(xlabel="test noise σ (0–255)", ylabel=f"PSNR − arm {baseline[0].upper()} (dB)",
         title="SFM ablation, paired by seed (mean, 95% interval)")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


RESULT_FIELDS = ["arm", "seed", "sigma", "psnr", "ssim"]


def write_results(rows: list[dict], path: pathlib.Path):
  """results.csv: one line per (arm, seed, σ) with the run's test-set means."""
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=RESULT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def read_results(path: pathlib.Path) -> list[dict]:
  """The rows of a results.csv written by `write_results`, typed as `collect` makes them."""
  with open(path, newline="") as f:
    return [{"arm": r["arm"], "seed": int(r["seed"]), "sigma": float(r["sigma"]),
             "psnr": float(r["psnr"]), "ssim": float(r["ssim"])} for r in csv.DictReader(f)]


def write_report(rows: list[dict], out: pathlib.Path):
  """results.csv, table.md and (with arm A among the rows) psnr_gain.png in the study folder."""
  write_results(rows, out / "results.csv")
  paired = paired_table(rows) + "\n" if "a_plain" in {r["arm"] for r in rows} else ""
  (out / "table.md").write_text(paired + markdown_table(rows))
  if "a_plain" in {r["arm"] for r in rows}:
    plot_gain(rows, out / "psnr_gain.png")


def parse_args(argv=None) -> argparse.Namespace:
  parser = study_parser(__doc__, None, "BSD68")
  parser.add_argument("--regime", choices=sorted(REGIMES), default="narrow",
                      help="narrow: trained on σ ∈ [0, 25] (the arms' configs); paper: on the "
                      "paper's σ ∈ [0, 55], tested at 15–100. Default --out: runs/sfm_ablation "
                      "or runs/sfm_ablation_paper.")
  parser.add_argument("--arms", nargs="+", choices=list(ABLATION_ARMS),
                      default=list(ABLATION_ARMS), help="Arms to run.")
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                      help="Seeds to run for every arm (the table uses every finished run in "
                      "--out, so two machines may run different seeds into one folder).")
  parser.add_argument("--override", action="append", default=[],
                      help="An extra config override for every training run, e.g. "
                      "--override=--config.train.steps=100 (repeatable).")
  return parser.parse_args(argv)


def main():
  args = parse_args()
  args.out = args.out or ("runs/sfm_ablation" if args.regime == "narrow"
                          else f"runs/sfm_ablation_{args.regime}")
  out, train_data, test_data = study_folders(args)
  for seed in args.seeds:
    for arm in args.arms:
      run_one(arm, seed, out, train_data, test_data, [*REGIMES[args.regime], *args.override])
  rows = collect(finished_runs(out))
  write_report(rows, out)
  print((out / "table.md").read_text())
  print(f"Wrote {out / 'results.csv'}, {out / 'table.md'} and {out / 'psnr_gain.png'}.")


if __name__ == "__main__":
  main()

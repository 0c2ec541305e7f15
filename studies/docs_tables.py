"""Regenerate the result tables and figures of the docs from the runs folders: no hand-copied
numbers.

  python studies/docs_tables.py --zoo runs/zoo --bicubic runs/bicubic --bands runs/sfm_bands \
      --niqe runs/niqe --sr_hole runs/sr_hole \
      --ablation docs/sfm_ablation_results.csv runs/sfm_ablation \
      --ablation_paper docs/sfm_ablation_paper_results.csv runs/sfm_ablation_paper
  python studies/docs_tables.py ... --check    # exit 1 if a table or data file is out of date

Each table sits in its doc between `<!-- table: NAME -->` and `<!-- end table -->`; this script
rewrites what lies between, draws docs/images/NAME.png for a block that shows a figure, and
rewrites the data files beside the docs (per-run means, band errors). Every source is optional;
a missing one leaves its blocks as they are, with a note on what to run:

  --zoo DIR            studies/zoo_eval.py's output (DIR/NAME/DATASET/summary.json), shown
                       beside docs/published.csv (which gives the source of every published value)
  --bicubic DIR        eval.py --task sr --bicubic outputs, DIR/DATASET-xSCALE/summary.json
  --niqe DIR           benchmarks/niqe.py --out DIR: NIQE against BasicSR, values and speed
  --sr_hole DIR        studies/sr_hole.py's folder: the SR kernel sweep and the "hole" spectra
  --bands DIR          studies/sfm_bands.py's outputs: DIR/released, DIR/ablation (σ ≤ 25 arms)
                       and DIR/ablation_paper (σ ∈ [0, 55] arms), each holding its bands.csv; a
                       group missing there is read from its copy beside the docs
                       (docs/sfm_bands_GROUP.csv)
  --ablation SRC...    the ablation study trained on σ ≤ 25 (studies/sfm_ablation.py): study
                       folders (their finished runs) or results.csv files (the study's, or the
                       copy beside the docs, which keeps runs made on other machines); a later
                       source's row replaces an earlier one's for the same arm, seed and σ
  --ablation_paper SRC...  the same for the study trained on σ ∈ [0, 55] (--regime paper)

--check compares the docs' text and data files, not the figures.
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import io
import json
import pathlib
import re
import shutil
import sys
from collections.abc import Callable

import numpy as np
import sfm_ablation
import sfm_bands
import sr_hole

from sfm_jax.config_base import ABLATION_ARMS

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PUBLISHED = DOCS / "published.csv"
FMD_LEVELS = (1, 2, 4, 8, 16)
MIN_REMOVED_DB = 0.01  # the smallest whole-image lead whose MSE removed is split among bands


def published() -> dict[str, dict[str, dict[str, float]]]:
  """{table: {model: {setting: value}}} of docs/published.csv."""
  out = collections.defaultdict(lambda: collections.defaultdict(dict))
  with open(PUBLISHED, newline="") as f:
    for row in csv.DictReader(f):
      out[row["table"]][row["model"]][row["setting"]] = float(row["value"])
  return out


def ours(zoo: pathlib.Path, name: str, dataset: str) -> dict[str, float] | None:
  """{σ as written in published.csv: mean PSNR} of one zoo_eval run, None if it is missing."""
  path = zoo / name.replace(":", "_") / dataset / "summary.json"
  if not path.is_file():
    return None
  return {f"{float(s):g}": m["psnr"] for s, m in json.loads(path.read_text())["per_sigma"].items()}


def _cell(mine: float | None, theirs: float | None) -> str:
  show = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
  return f"{show(mine)} / {show(theirs)}"


def _largest_gap(pairs) -> str:
  gaps = [abs(a - b) for a, b in pairs if a is not None and b is not None]
  return f"Largest difference to the published mean: {max(gaps):.3f} dB." if gaps else ""


def sfm_bsd68(zoo, pub) -> str | None:
  """The SFM authors' DnCNN-B and MemNet on BSD68: ours / the authors' per-image CSV means."""
  sigmas = ("15", "25", "50", "75", "100")
  names = [n for n in pub["sfm_bsd68"] if ours(zoo, n, "BSD68")]
  if not names:
    return None
  lines = ["| name | " + " | ".join(f"σ={s} ours / authors" for s in sigmas) + " |",
           "|---" * (len(sigmas) + 1) + "|"]
  pairs = []
  for name in names:
    mine, theirs = ours(zoo, name, "BSD68"), pub["sfm_bsd68"][name]
    pairs += [(mine.get(s), theirs.get(s)) for s in sigmas]
    lines.append(f"| `{name}` | " + " | ".join(_cell(mine.get(s), theirs.get(s))
                                               for s in sigmas) + " |")
  return "\n".join([*lines, "", _largest_gap(pairs)])


def n2n_bsd68(zoo, pub) -> str | None:
  """The release's N2N U-Nets on BSD68 with its own test: ours / the release's, per σ."""
  names = ("sfm:n2n_unet", "sfm:n2n_unet_sfm", "sfm:n2n_unet_lfm")
  runs = {n: ours(zoo, n, "BSD68") for n in names}
  if not any(runs.values()):
    return None
  theirs = pub["n2n_bsd68"]
  lines = ["| σ | regular ours / release | SFM ours / release | LFM ours / release | "
           "SFM − regular, ours / release |", "|---|---|---|---|---|"]
  pairs = []
  for sigma in (f"{s}" for s in range(10, 101, 10)):
    cells = []
    for name in names:
      mine = (runs[name] or {}).get(sigma)
      pairs.append((mine, theirs[name].get(sigma)))
      cells.append(_cell(mine, theirs[name].get(sigma)))
    lead = [None if None in (a.get(sigma), b.get(sigma)) else a[sigma] - b[sigma]
            for a, b in ((runs[names[1]] or {}, runs[names[0]] or {}),
                         (theirs[names[1]], theirs[names[0]]))]
    cells.append(" / ".join("–" if v is None else f"{v:+.2f}" for v in lead))
    lines.append(f"| {sigma} | " + " | ".join(cells) + " |")
  return "\n".join([*lines, "", _largest_gap(pairs)])


def ffdnet(zoo, pub) -> str | None:
  """IPOL's FFDNet: ours (converted weights, FFDNet paper's test) beside the paper's table."""
  sigmas = ("15", "25", "35", "50", "75")
  runs = {("ipol:ffdnet_gray", "BSD68"): "ffdnet_bsd68",
          ("ipol:ffdnet_color", "CBSD68"): "ffdnet_cbsd68"}
  if not any(ours(zoo, n, d) for n, d in runs):
    return None
  lines = ["| model, test set | " + " | ".join(f"σ={s}" for s in sigmas) + " |",
           "|---" * (len(sigmas) + 1) + "|"]
  for (name, dataset), table in runs.items():
    mine = ours(zoo, name, dataset) or {}
    paper = pub[table]["FFDNet paper"]
    fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    lines.append(f"| `{name}` on {dataset}, ours | " + " | ".join(fmt(mine.get(s))
                                                                   for s in sigmas) + " |")
    lines.append(f"| FFDNet paper, {dataset} | " + " | ".join(fmt(paper.get(s))
                                                             for s in sigmas) + " |")
  return "\n".join(lines)


def fmd_release(zoo, pub) -> str:
  """The release's FMD figures (mean over the 12 groups per noise level), the target of a run
  on the FMD data (with ours beside them where ZOO/NAME/FMD/results.json exists)."""
  names = ("sfm:n2n_fmd", "sfm:n2n_fmd_sfm", "sfm:n2s_fmd", "sfm:n2s_fmd_sfm")
  lines = ["| captures averaged | " + " | ".join(f"`{n}`" for n in names) + " |",
           "|---" * (len(names) + 1) + "|"]
  for level in FMD_LEVELS:
    cells = []
    for name in names:
      values = [v for k, v in pub["fmd"][name].items()
                if k.startswith(f"noise{level}_") and not k.endswith("test_mix")]
      path = zoo / name.replace(":", "_") / "FMD" / "results.json"
      mine = ""
      if path.is_file():
        results = json.loads(path.read_text())
        group = [m["psnr"] for m in results.values() if m["noise"] == level]
        mine = f"{sum(group) / len(group):.2f} / "
      cells.append(f"{mine}{sum(values) / len(values):.2f}")
    lines.append(f"| {level} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def ssim_window(zoo, pub) -> str | None:
  """The released DnCNN-B's BSD68 SSIM with the 7×7 uniform window (ZOO/sfm_dncnn_b/
  BSD68-ssim_uniform) and the 11×11 Gaussian one (ZOO/sfm_dncnn_b/BSD68, the default)."""
  sigmas = ("15", "25", "50")
  runs = {"7×7 uniform (before)": "BSD68-ssim_uniform", "11×11 Gaussian (now)": "BSD68"}
  summaries = {}
  for label, folder in runs.items():
    path = zoo / "sfm_dncnn_b" / folder / "summary.json"
    if path.is_file():
      summaries[label] = json.loads(path.read_text())["per_sigma"]
  if not summaries:
    return None
  lines = ["| window | " + " | ".join(f"σ={s}" for s in sigmas) + " |",
           "|---" * (len(sigmas) + 1) + "|"]
  for label in runs:
    per_sigma = summaries.get(label, {})
    cells = [f"{per_sigma[s]['ssim']:.4f}" if s in per_sigma else "–" for s in sigmas]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def bicubic(folder, pub) -> str | None:
  """Bicubic upscaling on Set5 and Set14 (Y PSNR/SSIM, border = scale): ours, from
  FOLDER/DATASET-xSCALE/summary.json, beside the SR literature's bicubic rows; then our NIQE
  of bicubic where the runs scored it."""
  scales = (2, 3, 4)
  paths = {(d, s): folder / f"{d}-x{s}" / "summary.json" for d in ("Set5", "Set14") for s in scales}
  if not any(path.is_file() for path in paths.values()):
    return None
  lines = ["| dataset | " + " | ".join(f"×{s}" for s in scales) + " |",
           "|---" * (len(scales) + 1) + "|"]
  niqe_rows = []
  for dataset in ("Set5", "Set14"):
    summaries = [json.loads(paths[dataset, s].read_text()) if paths[dataset, s].is_file()
                 else {} for s in scales]
    ours_cells = ["–" if not m else f"{m['bicubic_psnr']:.2f}/{m['bicubic_ssim']:.4f}"
                  for m in summaries]
    theirs = pub["bicubic"][dataset]
    theirs_cells = ["/".join(f"{theirs[f'x{s}_{m}']:{fmt}}" for m, fmt in
                             (("psnr", ".2f"), ("ssim", ".4f")) if f"x{s}_{m}" in theirs)
                    for s in scales]
    lines.append(f"| {dataset}, ours | " + " | ".join(ours_cells) + " |")
    lines.append(f"| {dataset}, literature | " + " | ".join(theirs_cells) + " |")
    if any("bicubic_niqe" in m for m in summaries):
      niqe_rows.append(f"| {dataset}, NIQE of bicubic | " + " | ".join(
          f"{m['bicubic_niqe']:.3f}" if "bicubic_niqe" in m else "–" for m in summaries) + " |")
  return "\n".join(lines + niqe_rows)


# The SR study and the NIQE benchmark.

def sr_comparison(summaries: dict[str, dict], trained: str = "1") -> str:
  """One sentence of the SR study's sweep: each network's lead over bicubic on the training blur,
  SFM − no SFM on it and off it, and the test blurs where bicubic beats both networks."""
  plain, sfm = summaries["no_sfm"], summaries["sfm"]
  leads = [arm[trained]["psnr"] - arm[trained]["bicubic_psnr"] for arm in (plain, sfm)]
  off = [sfm[s]["psnr"] - plain[s]["psnr"] for s in plain if s != trained]
  below = [s for s in plain
           if plain[s]["bicubic_psnr"] > max(plain[s]["psnr"], sfm[s]["psnr"])]
  return (f"On the training blur (σ = {trained}) no SFM / SFM lead bicubic by {leads[0]:.2f} / "
          f"{leads[1]:.2f} dB (SFM − no SFM {leads[1] - leads[0]:+.2f} dB); at the other test "
          f"blurs SFM − no SFM lies between {min(off):+.2f} and {max(off):+.2f} dB. Bicubic "
          f"beats both networks at σ = {', '.join(below) or 'none of the test blurs'}.")


def sr_sweep(folder, pub) -> str | None:
  """The SR study's kernel sweep on Set14 (studies/sr_hole.py's folder): PSNR per test blur."""
  summaries = sr_hole.read_summaries(folder)
  if summaries is None:
    return None
  return f"{sr_hole.psnr_table(summaries, ssim=False)}\n{sr_comparison(summaries)}"


def sr_spectra(folder, pub) -> str | None:
  """The SR "hole" figure (the study's spectra.png) above its PSNR/SSIM per test blur."""
  summaries = sr_hole.read_summaries(folder)
  if summaries is None or not (folder / "spectra.png").is_file():
    return None
  return (f"{sr_hole.psnr_table(summaries)}\n![radial spectra](images/sr_hole_spectra.png)\n\n"
          f"{sr_comparison(summaries)}")


def copy_spectra(folder, path: pathlib.Path):
  shutil.copyfile(folder / "spectra.png", path)


def niqe_table(folder, pub) -> str | None:
  """benchmarks/niqe.py --out FOLDER's printout: values, differences and speed of both."""
  path = folder / "niqe.csv"
  if not path.is_file():
    return None
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  lines = ["| image | sfm-jax | BasicSR | \\|difference\\| | s/MP sfm-jax | s/MP BasicSR |",
           "|---|---|---|---|---|---|"]
  for r in rows:
    ours_value, theirs = float(r["sfm_jax"]), float(r["basicsr"])
    lines.append(f"| {r['image']} | {ours_value:.4f} | {theirs:.4f} | "
                 f"{abs(ours_value - theirs):.4f} | {float(r['s_per_mp_sfm_jax']):.2f} | "
                 f"{float(r['s_per_mp_basicsr']):.2f} |")
  rates = [np.median([float(r[k]) for r in rows]) for k in ("s_per_mp_sfm_jax", "s_per_mp_basicsr")]
  machine = (folder / "machine.txt").read_text().strip()
  return "\n".join([*lines, "", f"Median over the {len(rows)} images: {rates[0]:.2f} s per "
                     f"megapixel for sfm-jax, {rates[1]:.2f} for BasicSR (ratio "
                     f"{rates[0] / rates[1]:.2f}). Machine: {machine}."])


# The ablation study: per-run means (arm, seed, sigma, psnr, ssim), from its folders or CSVs.

def ablation_rows(sources: list[str]) -> list[dict] | None:
  """The per-run means of the ablation's sources, merged in order (a study folder's finished
  runs, or a results.csv); None if no source holds any."""
  merged = {}
  for source in map(pathlib.Path, sources):
    if source.is_dir():
      rows = sfm_ablation.collect(sfm_ablation.finished_runs(source))
    elif source.is_file():
      rows = sfm_ablation.read_results(source)
    else:
      print(f"{source}: not found; skipped")
      continue
    merged.update({(r["arm"], r["seed"], r["sigma"]): r for r in rows})
  arm_order = {arm: k for k, arm in enumerate(ABLATION_ARMS)}
  keys = sorted(merged, key=lambda key: (arm_order[key[0]], key[1], key[2]))
  return [merged[key] for key in keys] or None


def runs_line(rows: list[dict]) -> str:
  """'Finished runs: a_plain seeds 0, 1, 2; …' of the per-run means."""
  seeds = {}
  for r in rows:
    seeds.setdefault(r["arm"], set()).add(r["seed"])
  return "Finished runs: " + "; ".join(f"{arm} seeds {', '.join(map(str, sorted(s)))}"
                                       for arm, s in seeds.items()) + "."


def ablation_means(rows, pub) -> str:
  """PSNR and SSIM per arm and σ: mean ± std over the seeds (`sfm_ablation.markdown_table`)."""
  return runs_line(rows) + "\n\n" + sfm_ablation.markdown_table(rows)


def ablation_paired(rows, pub) -> str | None:
  """Each arm's PSNR minus arm A's on the same seed, with 95% intervals."""
  if "a_plain" not in {r["arm"] for r in rows}:
    return None
  return sfm_ablation.paired_table(rows) + "\n" + paired_verdicts(rows)


def paired_verdicts(rows: list[dict]) -> str:
  """One line per arm: the σs where its 95% interval against arm A lies above 0, below 0, or
  holds 0 (a single seed gives no interval)."""
  lines = []
  for arm, per_sigma in sfm_ablation.paired_differences(rows).items():
    groups = {"above 0": [], "below 0": [], "0 inside": []}
    for sigma, (mean, half, _) in per_sigma.items():
      if not np.isfinite(half):
        continue
      key = "above 0" if mean - half > 0 else "below 0" if mean + half < 0 else "0 inside"
      groups[key].append(f"{sigma:g}")
    parts = [f"{k} at σ = {', '.join(v)}" for k, v in groups.items() if v]
    lines.append(f"- {arm[0].upper()} − A, 95% interval: {'; '.join(parts) or 'one seed'}.")
  return "\n".join(lines)


def ablation_gain(image: str) -> Callable:
  """The block of the gain plot `image` (`sfm_ablation.plot_gain`)."""
  def build(rows, pub) -> str | None:
    if "a_plain" not in {r["arm"] for r in rows}:
      return None
    return (f"![each arm's PSNR minus arm A's, paired by seed](images/{image})\n\n"
            + runs_line(rows))
  return build


def draw_gain(rows, path: pathlib.Path):
  sfm_ablation.plot_gain(rows, path)


def results_csv(rows) -> str:
  """The per-run means as results.csv (`sfm_ablation.write_results`'s format)."""
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=sfm_ablation.RESULT_FIELDS, lineterminator="\n")
  writer.writeheader()
  writer.writerows(rows)
  return out.getvalue()


# The frequency picture: band errors (studies/sfm_bands.py), each model against its baseline.

BAND_GROUPS = {"all bands": (0.0, 1.0), "D/R 0–0.3": (0.0, 0.3), "0.3–0.7": (0.3, 0.7),
               "0.7–1 (masks' band)": sfm_bands.TARGETED_BAND}


def band_file(bands: pathlib.Path | tuple[pathlib.Path, ...], group: str) -> pathlib.Path | None:
  """A band group's bands.csv: the first of the runs folder's (BANDS/GROUP/bands.csv) and the copy
  beside the docs (DOCS/sfm_bands_GROUP.csv) that exists, of the folders `bands`."""
  for folder in (bands,) if isinstance(bands, pathlib.Path) else bands:
    for path in (folder / group / "bands.csv", folder / f"sfm_bands_{group}.csv"):
      if path.is_file():
        return path
  return None


def band_rows(bands, group: str) -> list[dict] | None:
  """The rows of a band group's bands.csv (`band_file`); None if it is missing."""
  path = band_file(bands, group)
  return (sfm_bands.read_rows(path) or None) if path else None


def band_pairs(rows: list[dict]) -> list[tuple[str, str]]:
  """(baseline, model) pairs: every ablation arm against arm A, or each label 'X SFM'
  against 'X'."""
  models = list(dict.fromkeys(r["model"] for r in rows))
  if "a_plain" in models:
    return [("a_plain", m) for m in models if m in ABLATION_ARMS and m != "a_plain"]
  return [(m, f"{m} SFM") for m in models if f"{m} SFM" in models]


def pair_name(baseline: str, model: str) -> str:
  if baseline in ABLATION_ARMS:
    return f"{model[0].upper()} − {baseline[0].upper()}"
  return f"{model} − {baseline}"


def band_leads(rows: list[dict], baseline: str, model: str) -> dict[str, dict]:
  """{score: {σ: (mean, 95% half-width, seeds)}}: the model's lead over the baseline in dB
  (the baseline's error over the model's), paired by seed, per band ("band0", …) and per
  BAND_GROUPS entry."""
  scores = [s for s in sfm_bands.band_scores(rows, BAND_GROUPS) if s["arm"] in (baseline, model)]
  names = [k for k in scores[0] if k not in ("arm", "seed", "sigma")]
  return {name: sfm_ablation.paired_differences(scores, baseline, name).get(model, {})
          for name in names}


def band_layout(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
  """(band_low, fraction) of the bands, in order, from the first run (model, seed, σ) of
  `rows`."""
  first = (rows[0]["model"], rows[0]["seed"], rows[0]["sigma"])
  layout = sorted((r["band_low"], r["fraction"]) for r in rows
                  if (r["model"], r["seed"], r["sigma"]) == first)
  band_low, fraction = (np.array(column) for column in zip(*layout, strict=True))
  return band_low, fraction


def removed_shares(rows: list[dict], baseline: str, model: str, sigma: float) -> str:
  """'a / b / c%': the shares of the MSE the model removes (against the baseline, seed means)
  that lie in each band group (but the whole); '–' when it removes less than MIN_REMOVED_DB
  in all (the shares of a total near 0 say nothing)."""
  mean = sfm_bands.mean_over_seeds(rows)
  band_low, fraction = band_layout([r for r in rows if r["model"] == baseline
                                    and r["sigma"] == sigma])
  errors = fraction * mean[baseline][sigma], fraction * mean[model][sigma]
  removed = errors[0] - errors[1]
  if 10 * np.log10(errors[0].sum() / errors[1].sum()) < MIN_REMOVED_DB:
    return "–"
  shares = [100 * removed[sfm_bands.in_band(band_low, band)].sum() / removed.sum()
            for band in list(BAND_GROUPS.values())[1:]]
  return " / ".join(f"{share:.0f}" for share in shares) + "%"


def _lead_cell(lead: tuple[float, float, int] | None, seeded: bool) -> str:
  if lead is None:
    return "–"
  mean, half, n = lead
  if not seeded:
    return f"{mean:+.2f}"
  return f"{mean:+.2f} ± {half:.2f} ({n})" if n > 1 else f"{mean:+.2f} ({n})"


def _peak_cell(leads: dict[str, dict], sigma: float) -> str:
  """The band of the largest lead (mean over seeds) and the lead."""
  bands = [(leads[f"band{k}"][sigma][0], k) for k in range(sfm_bands.NUM_BINS)
           if sigma in leads.get(f"band{k}", {})]
  best, k = max(bands)
  width = 1 / sfm_bands.NUM_BINS
  return f"{best:+.1f} at {k * width:.2f}–{(k + 1) * width:.2f}"


def coefficient_shares(rows: list[dict]) -> str:
  """'Share of an image's DCT coefficients: …' per BAND_GROUPS entry (but the whole)."""
  band_low, fraction = band_layout(rows)
  shares = [f"{name} {100 * fraction[sfm_bands.in_band(band_low, band)].sum():.0f}%"
            for name, band in list(BAND_GROUPS.items())[1:]]
  return "Share of an image's DCT coefficients: " + ", ".join(shares) + "."


def bands_table(rows: list[dict]) -> str:
  """Per model against its baseline and per σ: the lead in dB over all bands and per band
  group, the shares of the removed MSE per band group, and the band of the largest lead."""
  seeded = any(r["seed"] is not None for r in rows)
  unit = "dB, mean ± 95% half-width (seeds)" if seeded else "dB"
  lines = [f"| lead ({unit}) | σ | " + " | ".join(BAND_GROUPS) +
           " | MSE removed in 0–0.3 / 0.3–0.7 / 0.7–1 | largest lead per band (dB, at D/R) |",
           "|---|---|" + "---|" * len(BAND_GROUPS) + "---|---|"]
  for baseline, model in band_pairs(rows):
    leads = band_leads(rows, baseline, model)
    for sigma in sorted(leads["all bands"]):
      cells = [_lead_cell(leads[g].get(sigma), seeded) for g in BAND_GROUPS]
      cells += [removed_shares(rows, baseline, model, sigma), _peak_cell(leads, sigma)]
      lines.append(f"| {pair_name(baseline, model)} | {sigma:g} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def bands_block(group: str, image: str) -> Callable:
  """The block of one band group: its figure, the lead table, the coefficients' shares."""
  def build(bands, pub) -> str | None:
    rows = band_rows(bands, group)
    if rows is None or not band_pairs(rows):
      return None
    images = sorted({r["images"] for r in rows})
    return (f"![error per DCT band and lead per band](images/{image})\n\n{bands_table(rows)}\n\n"
            f"{coefficient_shares(rows)} Test images: {', '.join(map(str, images))}. "
            f"{runs_of_bands(rows)}")
  return build


def runs_of_bands(rows: list[dict]) -> str:
  """'Models: …' with their seeds, of bands.csv rows."""
  seeds = {}
  for r in rows:
    seeds.setdefault(r["model"], set()).add(r["seed"])
  return "Models: " + "; ".join(
      name if s == {None} else f"{name} seeds {', '.join(map(str, sorted(s)))}"
      for name, s in seeds.items()) + "."


def draw_bands(group: str) -> Callable:
  def draw(bands, path: pathlib.Path):
    plot_bands(band_rows(bands, group), path)
  return draw


def plot_bands(rows: list[dict], path: pathlib.Path):
  """Top: each model's error per band (mean over seeds); bottom: each model's lead per band
  over its baseline (mean over seeds, 95% interval shaded), the masks' band shaded."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  results = sfm_bands.mean_over_seeds(rows)
  sigmas = sorted(next(iter(results.values())))
  fig, axes = plt.subplots(2, len(sigmas), figsize=(3.2 * len(sigmas), 6.4), squeeze=False)
  sfm_bands.plot_errors(list(axes[0]), results, sigmas)
  centres = (np.arange(sfm_bands.NUM_BINS) + 0.5) / sfm_bands.NUM_BINS
  for baseline, model in band_pairs(rows):
    leads = band_leads(rows, baseline, model)
    for ax, sigma in zip(axes[1], sigmas, strict=True):
      mean, half, _ = (np.array(v) for v in zip(*(leads[f"band{k}"][sigma]
                                                  for k in range(sfm_bands.NUM_BINS)),
                                                 strict=True))
      colour = f"C{list(results).index(model)}"  # the model's colour in the top row
      ax.plot(centres, mean, marker=".", color=colour, label=pair_name(baseline, model))
      ax.fill_between(centres, mean - np.nan_to_num(half), mean + np.nan_to_num(half),
                      color=colour, alpha=0.2)
  for ax in axes[1]:
    ax.axvspan(*sfm_bands.TARGETED_BAND, color="0.9", zorder=0)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set(xlabel="DCT band D/R")
  axes[1][0].set_ylabel("lead over the baseline (dB)")
  axes[1][0].legend(fontsize=6)
  sfm_bands.lay_out_with_legend_below(fig, axes[0][0])
  fig.savefig(path, dpi=110)
  plt.close(fig)


def bands_csv(group: str) -> Callable:
  """The data file of one band group: its bands.csv as sfm_bands writes it."""
  def build(bands) -> str | None:
    path = band_file(bands, group)
    return path.read_text() if path else None
  return build


@dataclasses.dataclass(frozen=True)
class Block:
  """A marked block: its doc, the input it is built from, its builder ((input, published) ->
  the block's text, or None when the input lacks its runs) and, for a block that shows
  docs/images/IMAGE, the function that draws it ((input, path) -> None)."""
  doc: str
  source: str
  build: Callable
  image: str | None = None
  draw: Callable | None = None


BLOCKS = {
    "sfm_bsd68": Block("model_zoo.md", "zoo", sfm_bsd68),
    "n2n_bsd68": Block("reproduction.md", "zoo", n2n_bsd68),
    "ffdnet": Block("reproduction.md", "zoo", ffdnet),
    "fmd_release": Block("reproduction.md", "zoo", fmd_release),
    "ssim_window": Block("reproduction.md", "zoo", ssim_window),
    "bicubic": Block("reproduction.md", "bicubic", bicubic),
    "niqe": Block("reproduction.md", "niqe", niqe_table),
    "sr_sweep": Block("reproduction.md", "sr_hole", sr_sweep),
    "sr_hole": Block("sfm_ablation.md", "sr_hole", sr_spectra, "sr_hole_spectra.png",
                     copy_spectra),
    "sfm_ablation_means": Block("sfm_ablation.md", "ablation", ablation_means),
    "sfm_ablation_paired": Block("sfm_ablation.md", "ablation", ablation_paired),
    "sfm_ablation_gain": Block("sfm_ablation.md", "ablation",
                               ablation_gain("sfm_ablation_gain.png"),
                               "sfm_ablation_gain.png", draw_gain),
    "sfm_ablation_paper_means": Block("sfm_ablation.md", "ablation_paper", ablation_means),
    "sfm_ablation_paper_paired": Block("sfm_ablation.md", "ablation_paper", ablation_paired),
    "sfm_ablation_paper_gain": Block("sfm_ablation.md", "ablation_paper",
                                     ablation_gain("sfm_ablation_paper_gain.png"),
                                     "sfm_ablation_paper_gain.png", draw_gain),
    **{f"sfm_bands_{group}": Block("sfm_ablation.md", "bands",
                                   bands_block(group, f"sfm_bands_{group}.png"),
                                   f"sfm_bands_{group}.png", draw_bands(group))
       for group in ("released", "ablation", "ablation_paper")},
}
# Data files beside the docs: {file name: (input, builder (input) -> its text or None)}.
DATA_FILES = {
    "sfm_ablation_results.csv": ("ablation", results_csv),
    "sfm_ablation_paper_results.csv": ("ablation_paper", results_csv),
    **{f"sfm_bands_{group}.csv": ("bands", bands_csv(group))
       for group in ("released", "ablation", "ablation_paper")},
}
HINTS = {
    "zoo": "python studies/zoo_eval.py --data ../shared/data --out runs/zoo",
    "bicubic": "the eval.py --task sr --bicubic loop in docs/reproduction.md",
    "bands": "the studies/sfm_bands.py commands in docs/sfm_ablation.md",
    "niqe": "python benchmarks/niqe.py --out runs/niqe",
    "sr_hole": "python studies/sr_hole.py --out runs/sr_hole …",
    "ablation": "python studies/sfm_ablation.py --out runs/sfm_ablation …",
    "ablation_paper": "python studies/sfm_ablation.py --regime paper "
                      "--out runs/sfm_ablation_paper …",
}
_BLOCK = "<!-- table: {} -->\n(.*?)<!-- end table -->"


def render_blocks(inputs: dict, docs: pathlib.Path = DOCS) -> tuple[dict[str, str], list[str]]:
  """({doc file name: its new text}, the names of the blocks regenerated): every block whose
  input holds its runs is rewritten, the others are left as they are (with a note)."""
  pub = published()
  texts, built = {}, []
  for name, block in BLOCKS.items():
    text = texts.get(block.doc) or (docs / block.doc).read_text()
    pattern = re.compile(_BLOCK.format(re.escape(name)), re.S)
    if not pattern.search(text):
      raise SystemExit(f"error: docs/{block.doc} has no `<!-- table: {name} -->` block "
                       "(… `<!-- end table -->`); add it where the table belongs.")
    source = inputs.get(block.source)
    body = None if source is None else block.build(source, pub)
    if body is None:
      print(f"{name}: no runs from --{block.source} ({HINTS[block.source]}); left as it is")
    else:
      new = f"<!-- table: {name} -->\n{body.strip()}\n<!-- end table -->"
      text = pattern.sub(lambda _, new=new: new, text)
      built.append(name)
    texts[block.doc] = text
  return texts, built


def render(zoo: pathlib.Path | None, docs: pathlib.Path = DOCS, **inputs) -> dict[str, str]:
  """{doc file name: its new text} from the zoo folder and the other inputs (bicubic, bands:
  folders; ablation, ablation_paper: per-run means, `ablation_rows`)."""
  return render_blocks({"zoo": zoo, **inputs}, docs)[0]


def data_files(inputs: dict) -> dict[str, str]:
  """{data file name beside the docs: its new text} of the inputs that hold runs."""
  texts = {}
  for name, (source, build) in DATA_FILES.items():
    text = None if inputs.get(source) is None else build(inputs[source])
    if text is not None:
      texts[name] = text
  return texts


def load_inputs(args) -> dict:
  """The inputs of the blocks from the command line: folders, or None where missing."""
  folder = lambda path: pathlib.Path(path) if path and pathlib.Path(path).is_dir() else None  # noqa: E731
  bands = tuple(f for f in (folder(args.bands), folder(args.docs)) if f)  # runs, then the copies
  return {"zoo": folder(args.zoo), "bicubic": folder(args.bicubic), "bands": bands or None,
          "niqe": folder(args.niqe), "sr_hole": folder(args.sr_hole),
          "ablation": ablation_rows(args.ablation),
          "ablation_paper": ablation_rows(args.ablation_paper)}


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--zoo", default="runs/zoo", help="studies/zoo_eval.py's output folder.")
  parser.add_argument("--bicubic", default="runs/bicubic", help="eval.py --bicubic outputs.")
  parser.add_argument("--bands", default="runs/sfm_bands", help="studies/sfm_bands.py outputs.")
  parser.add_argument("--niqe", default="runs/niqe", help="benchmarks/niqe.py --out folder.")
  parser.add_argument("--sr_hole", default="runs/sr_hole", help="studies/sr_hole.py's folder.")
  parser.add_argument("--ablation", nargs="*", help="σ ≤ 25 ablation: study folders or "
                      "results.csv files (default: docs/sfm_ablation_results.csv, then "
                      "runs/sfm_ablation).",
                      default=[str(DOCS / "sfm_ablation_results.csv"), "runs/sfm_ablation"])
  parser.add_argument("--ablation_paper", nargs="*", help="σ ∈ [0, 55] ablation: the same "
                      "(default: docs/sfm_ablation_paper_results.csv, then "
                      "runs/sfm_ablation_paper).",
                      default=[str(DOCS / "sfm_ablation_paper_results.csv"),
                               "runs/sfm_ablation_paper"])
  parser.add_argument("--docs", default=str(DOCS), help="The docs folder to rewrite.")
  parser.add_argument("--check", action="store_true", help="Only say which docs are stale.")
  return parser.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  docs, inputs = pathlib.Path(args.docs), load_inputs(args)
  texts, built = render_blocks(inputs, docs)
  texts.update(data_files(inputs))
  stale = [name for name, text in texts.items()
           if not (docs / name).is_file() or (docs / name).read_text() != text]
  if not args.check:
    for name in stale:
      (docs / name).write_text(texts[name])
    for name in built:
      if BLOCKS[name].draw:
        BLOCKS[name].draw(inputs[BLOCKS[name].source], docs / "images" / BLOCKS[name].image)
  verb = "out of date" if args.check else "rewritten"
  print(f"{verb}: {', '.join(stale)}" if stale else "docs tables are up to date")
  return 1 if args.check and stale else 0


if __name__ == "__main__":
  sys.exit(main())

"""Regenerate the result tables of the docs from the runs folders: no hand-copied numbers.

  python studies/docs_tables.py --zoo runs/zoo            # rewrite the tables in docs/*.md
  python studies/docs_tables.py --zoo runs/zoo --check    # exit 1 if a table is out of date

Each table sits in its doc between `<!-- table: NAME -->` and `<!-- end table -->`; this script
rewrites what lies between. Our numbers come from eval.py's outputs (`studies/zoo_eval.py`
writes ZOO/NAME/DATASET/summary.json); the published ones from docs/published.csv, which gives
the source of every value (the originals' result files, the papers). A table whose runs are
missing is left as it is, with a note on what to run.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PUBLISHED = DOCS / "published.csv"
FMD_LEVELS = (1, 2, 4, 8, 16)


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


TABLES = {"sfm_bsd68": ("model_zoo.md", sfm_bsd68), "n2n_bsd68": ("reproduction.md", n2n_bsd68),
          "ffdnet": ("reproduction.md", ffdnet), "fmd_release": ("reproduction.md", fmd_release)}
_BLOCK = "<!-- table: {} -->\n(.*?)<!-- end table -->"


def render(zoo: pathlib.Path) -> dict[str, str]:
  """{doc file name: its new text}, with every table whose runs exist regenerated."""
  pub = published()
  texts = {}
  for table, (doc, build) in TABLES.items():
    text = texts.get(doc) or (DOCS / doc).read_text()
    pattern = re.compile(_BLOCK.format(re.escape(table)), re.S)
    if not pattern.search(text):
      raise SystemExit(f"error: docs/{doc} has no `<!-- table: {table} -->` block.")
    body = build(zoo, pub)
    if body is None:
      print(f"{table}: no runs under {zoo} (python studies/zoo_eval.py); left as it is")
    else:
      block = f"<!-- table: {table} -->\n{body.strip()}\n<!-- end table -->"
      text = pattern.sub(lambda _, block=block: block, text)
    texts[doc] = text
  return texts


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--zoo", default="runs/zoo", help="studies/zoo_eval.py's output folder.")
  parser.add_argument("--check", action="store_true", help="Only say which docs are stale.")
  args = parser.parse_args(argv)
  stale = []
  for doc, text in render(pathlib.Path(args.zoo)).items():
    if (DOCS / doc).read_text() != text:
      stale.append(doc)
      if not args.check:
        (DOCS / doc).write_text(text)
  verb = "out of date" if args.check else "rewritten"
  print(f"{verb}: {', '.join(stale)}" if stale else "docs tables are up to date")
  return 1 if args.check and stale else 0


if __name__ == "__main__":
  sys.exit(main())

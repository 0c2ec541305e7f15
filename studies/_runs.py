"""Running train.py and eval.py for a study, one process each, as a user would."""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]  # the checkout: train.py, eval.py, configs/


def python(args: list[str]):
  """Runs `python ARGS` in the checkout; a failure ends the study with one line."""
  print("$ python", " ".join(args), flush=True)
  if subprocess.run([sys.executable, *args], cwd=ROOT).returncode:
    raise SystemExit(f"error: {args[0]} failed (its message is above); fix the cause and rerun "
                     "the study: finished runs are kept.")


def train_then_test(config: str, workdir: pathlib.Path, train_data: str, test_data: str,
                    overrides: list[str] = (), eval_overrides: list[str] = ()) -> dict:
  """train.py then eval.py on `test_data` for one run; returns eval.py's summary.json (its
  means per noise σ under "per_sigma", per blur σ under "by_blur_sigma"). A run whose
  WORKDIR/eval/summary.json exists is not run again, and train.py resumes a killed run from its
  checkpoint."""
  summary = workdir / "eval" / "summary.json"
  if not summary.exists():
    python(["train.py", "--config", str(ROOT / "configs" / config), "--workdir", str(workdir),
            f"--config.data.source={train_data}", f"--config.data.val_source={test_data}",
            *overrides])
    python(["eval.py", "--weights", str(workdir / "weights.msgpack"), "--dataset", test_data,
            "--output", str(workdir / "eval"), *eval_overrides])
  return json.loads(summary.read_text())


def study_parser(doc: str, out: str, test_data: str, data_required: bool = True):
  """An argument parser with the flags every study takes: --train_data, --test_data (required,
  or 'builtin' by default), --out."""
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  data = {"required": True} if data_required else {"default": "builtin"}
  parser.add_argument("--train_data", help="Training image folder (BSD400).", **data)
  parser.add_argument("--test_data", help=f"Test image folder ({test_data}).", **data)
  parser.add_argument("--out", default=out, help="Study folder.")
  return parser


def study_folders(args) -> tuple[pathlib.Path, str, str]:
  """(the study folder, created; the training and test data as absolute paths, 'builtin' kept):
  the runs start in the checkout, not where the user is."""
  out = pathlib.Path(args.out).resolve()
  out.mkdir(parents=True, exist_ok=True)
  train_data, test_data = (d if d == "builtin" else str(pathlib.Path(d).resolve())
                           for d in (args.train_data, args.test_data))
  return out, train_data, test_data

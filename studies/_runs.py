"""Running train.py and eval.py for a study, one process each, as a user would."""

from __future__ import annotations

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

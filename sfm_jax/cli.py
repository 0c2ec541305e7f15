"""Helpers shared by the thin entry points train.py and eval.py."""

from __future__ import annotations

import contextlib
import pathlib
import sys

from sfm_jax.data.images import DataError

USER_ERRORS = (DataError, ValueError, FileNotFoundError)


@contextlib.contextmanager
def report_user_errors():
  """Turns a user's mistake into one line on stderr and exit status 2 (no traceback)."""
  from sfm_jax.train.loop import TrainingError

  try:
    yield
  except (*USER_ERRORS, TrainingError) as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def default_workdir(config_path: str) -> str:
  """runs/<config file stem>, e.g. runs/quickstart for configs/quickstart.py."""
  return str(pathlib.Path("runs") / pathlib.Path(config_path.split(":")[0]).stem)

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


_FLAG_ERRORS = (AttributeError, KeyError, TypeError, ValueError, OSError)


def _bad_flag(error: BaseException):
  cause = error.__cause__ if isinstance(error.__cause__, OSError) else error
  text = str(cause.args[0] if cause.args else cause)
  text = " ".join(text.replace("\\n", " ").replace("\\", "").replace("'", "").split())
  print(f"error: bad --config: {text} (check the config path and field names).",
        file=sys.stderr)
  sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing that reports a bad --config (missing file, unknown field, wrong type) as
  one line and exit status 2 instead of a traceback."""
  from absl import flags

  try:
    return flags.FLAGS(argv)
  except (*_FLAG_ERRORS, flags.Error) as error:
    _bad_flag(error)


def config_value(holder):
  """The parsed config of a config_flags holder (overrides are applied lazily, so errors can
  surface here too), or one error line and exit status 2."""
  try:
    config = holder.value
    config.to_dict()  # forces a lazily loaded config file to load now
    return config
  except _FLAG_ERRORS as error:
    _bad_flag(error)


def default_workdir(config_path: str) -> str:
  """runs/<config file stem>, e.g. runs/quickstart for configs/quickstart.py."""
  return str(pathlib.Path("runs") / pathlib.Path(config_path.split(":")[0]).stem)

"""Helpers shared by the command-line programs (sfm_jax.train.main, sfm_jax.evaluation.main)."""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import sys
import traceback

from absl import app, flags, logging

from sfm_jax import xla_cpu
from sfm_jax.errors import CheckpointError, DataError, TrainingError

USER_ERRORS = (DataError, ValueError, FileNotFoundError, CheckpointError, TrainingError)


@contextlib.contextmanager
def report_user_errors():
  """Turns a user's mistake into one line on stderr and exit status 2 (no traceback)."""
  try:
    yield
  except USER_ERRORS as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


@contextlib.contextmanager
def report_interrupt(what_remains: str):
  """Ctrl-C: one line on stderr (`what_remains`: what was kept and how to go on) and exit status
  130, instead of a KeyboardInterrupt traceback."""
  try:
    yield
  except KeyboardInterrupt:
    print(f"\ninterrupted: {what_remains}", file=sys.stderr)
    sys.exit(130)


_FLAG_ERRORS = (AttributeError, KeyError, TypeError, ValueError, OSError)


def _bad_flag(error: BaseException):
  cause = error.__cause__ if isinstance(error.__cause__, OSError) else error
  text = str(cause.args[0] if cause.args else cause)
  text = " ".join(text.replace("\\n", " ").replace("\\", "").replace("'", "").split())
  print(f"error: bad --config: {text} (check the config path and field names).",
        file=sys.stderr)
  sys.exit(2)


def _config_paths(argv: list[str]) -> list[str]:
  """The --config file paths in argv (without a `:override` suffix), made absolute."""
  paths = []
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      paths.append(arg.split("=", 1)[1])
    elif arg == "--config" and i + 1 < len(argv):
      paths.append(argv[i + 1])
  return [os.path.abspath(path.split(":")[0]) for path in paths]


def _config_file_failed(error: BaseException) -> None:
  """If `error` came from the --config file itself (a syntax error, or get_config raising),
  one line naming the file and the line, and exit status 2; otherwise nothing."""
  files = set(_config_paths(sys.argv))
  if isinstance(error, SyntaxError) and error.filename and os.path.abspath(error.filename) in files:
    print(f"error: --config {error.filename}, line {error.lineno}: {error.msg}: "
          f"{(error.text or '').strip()!r}; fix the file and rerun.", file=sys.stderr)
    sys.exit(2)
  frames = [f for f in traceback.extract_tb(error.__traceback__)
            if os.path.abspath(f.filename) in files]
  if frames:
    where = frames[-1]
    print(f"error: --config {where.filename}, line {where.lineno} ({where.name}) raised "
          f"{type(error).__name__}: {error}; fix the file and rerun.", file=sys.stderr)
    sys.exit(2)


def _verbose(argv: list[str]) -> bool:
  return any(arg.split("=")[0] in ("--verbosity", "-v") for arg in argv)


def quiet_library_logs(argv: list[str] | None = None) -> None:
  """Keeps TensorFlow's C++ banners (oneDNN, CUDA probes) and the libraries' INFO logs off the
  console unless --verbosity is given. Call before TensorFlow is imported."""
  if _verbose(sys.argv if argv is None else argv):
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # TensorFlow ≥ 2.20 prints its oneDNN banner whatever TF_CPP_MIN_LOG_LEVEL says; TensorFlow
  # only reads files and writes summaries here, so its oneDNN kernels are not needed.
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  logging.set_verbosity(logging.WARNING)


def _unknown_flag(error: flags.UnrecognizedFlagError):
  """One line naming the wrong flag and this program's flags."""
  main_flags = flags.FLAGS.get_key_flags_for_module(sys.argv[0])
  names = sorted(f"--{flag.name}" for flag in main_flags)
  print(f"error: unknown flag --{error.flagname}; this program takes {', '.join(names)} "
        "(config fields as --config.a.b=value; --helpfull lists all).", file=sys.stderr)
  sys.exit(2)


def prepare_process() -> None:
  """What every program does before JAX starts: YNNPACK kernels on CPU (SFM_JAX_YNNPACK=0: off),
  the libraries' logs kept quiet, and the user's own modules importable."""
  xla_cpu.enable()
  quiet_library_logs()
  find_user_modules(sys.argv)


def find_user_modules(argv: list[str]) -> None:
  """Puts the current folder and the --config file's folder on sys.path (as `python script.py`
  does for the script's), so that a config's `import my_models` and a weights file's
  registering module import from there, whether the program runs as a script or a console
  script."""
  folders = [os.getcwd(), *(os.path.dirname(path) for path in _config_paths(argv))]
  for folder in folders:
    if folder not in sys.path:
      sys.path.append(folder)


def run_program(main, define_flags) -> None:
  """absl's app.run of main(argv, flag=define_flags()), with the flags shown by --help and
  named in errors as this program's (whether started as a script or a console script)."""
  prepare_process()
  defined = define_flags()
  for holder in defined.values():
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[holder.name])
  sys.exit(app.run(functools.partial(main, flag=defined), flags_parser=parse_flags))


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing that reports an unknown flag, or a bad --config (missing file, unknown
  field, wrong type), as one line and exit status 2 instead of a traceback."""
  try:
    return flags.FLAGS(argv)
  except flags.UnrecognizedFlagError as error:
    if error.flagname.startswith("config."):
      _bad_flag(error)
    _unknown_flag(error)
  except (*_FLAG_ERRORS, flags.Error) as error:
    _config_file_failed(error)
    _bad_flag(error)
  except Exception as error:  # noqa: BLE001 - any error of the user's config file: one line
    _config_file_failed(error)
    raise


def config_value(holder):
  """The parsed config of a config_flags holder (overrides are applied lazily, so errors can
  surface here too), or one error line and exit status 2."""
  try:
    config = holder.value
    config.to_dict()  # forces a lazily loaded config file to load now
    return config
  except _FLAG_ERRORS as error:
    _config_file_failed(error)
    _bad_flag(error)
  except Exception as error:  # noqa: BLE001 - any error of the user's config file: one line
    _config_file_failed(error)
    raise


def default_workdir(config_path: str) -> str:
  """runs/<config file stem>, e.g. runs/quickstart for configs/quickstart.py."""
  return str(pathlib.Path("runs") / pathlib.Path(config_path.split(":")[0]).stem)


def start_distributed(coordinator_address: str | None, num_processes: int | None,
                      process_id: int | None) -> None:
  """jax.distributed.initialize with the given coordinator (which binds to that address only,
  not every interface), or the cluster's own description (SLURM, Cloud TPU, …) when all three
  are None."""
  import jax

  given = (coordinator_address, num_processes, process_id)
  if any(v is not None for v in given) and any(v is None for v in given):
    raise ValueError("--distributed takes all of --coordinator_address, --num_processes and "
                     "--process_id, or none of them (cluster auto-detection).")
  if coordinator_address is None:
    jax.distributed.initialize()
    return
  if not 0 <= process_id < num_processes:
    raise ValueError(f"--process_id={process_id} must lie in [0, --num_processes="
                     f"{num_processes}).")
  jax.distributed.initialize(coordinator_address, num_processes, process_id,
                             coordinator_bind_address=coordinator_address)

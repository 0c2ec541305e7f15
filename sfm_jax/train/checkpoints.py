"""Orbax checkpoints of the whole training state: periodic, atomic, keep-N, automatic resume."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import pathlib
import shutil
import sys

import grain
import jax
import orbax.checkpoint as ocp
from flax import nnx

from sfm_jax.checks import config_differences
from sfm_jax.errors import CheckpointError, ConfigError
from sfm_jax.models import PLAIN, Compute, get_model
from sfm_jax.train.hosts import max_over_processes
from sfm_jax.weights import load_state_into, write_atomically


class Checkpoints:
  """Saves and restores the training state under WORKDIR/checkpoints/STEP: the
  {"model", "optimizer", "ema", ...} pytree (item "default") and, for a streamed run, the grain
  iterator's position (item "data", one JSON file per process).

  Noise and SFM are functions of (seed, step), and so is the fixed pipeline's data order; with
  the stream's saved position, a restored step continues exactly.
  """

  def __init__(self, workdir: str | pathlib.Path, keep: int = 3):
    self.directory = directory = pathlib.Path(workdir).absolute() / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    handlers = {"default": ocp.StandardCheckpointHandler(),
                "data": grain.checkpoint.CheckpointHandler()}
    self.manager = ocp.CheckpointManager(directory, item_handlers=handlers, options=options)
    self._quiet = _DiskFullNoise().install()

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, tree, data: grain.DatasetIterator | None = None) -> None:
    """Writes `tree` and, if given, the position of the `data` iterator (in the background).
    CheckpointError, with the previous checkpoints intact and no partial one left, when the
    disk has no room for it (checked first) or fills while it is written."""
    self._check_room(tree)
    items = {"default": ocp.args.StandardSave(tree)}
    if data is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data)
    with self._disk_full_reported():
      self.manager.save(step, args=ocp.args.Composite(**items), force=True)

  def _check_room(self, tree) -> None:
    """CheckpointError when the disk's free space is below what a checkpoint takes: the newest
    one's size, or the tree's bytes before the first, plus a tenth and 1 MiB."""
    latest = self.manager.latest_step()
    size = (_folder_bytes(self.directory / str(latest)) if latest is not None else
            sum(leaf.nbytes for leaf in jax.tree.leaves(tree) if hasattr(leaf, "nbytes")))
    needed, free = int(size * 1.1) + 2**20, shutil.disk_usage(self.directory).free
    if max_over_processes(free < needed):  # every process stops, or none does
      raise CheckpointError(self._full_message(
          f"{free / 2**20:.1f} MiB free where a checkpoint needs about {needed / 2**20:.1f} MiB"
          if free < needed else "on another process"))

  def _full_message(self, detail: str) -> str:
    latest = self.manager.latest_step()
    resume = (f"it resumes from the last complete checkpoint, step {latest}" if latest
              is not None else "no checkpoint was written yet, so it starts afresh")
    return (f"the disk of {self.directory} is full ({detail}); free some space (or lower "
            f"train.keep_checkpoints), then rerun the same command: {resume}.")

  @contextlib.contextmanager
  def _disk_full_reported(self):
    """Orbax's errors of a disk that fills during a save (raised by the save's background
    thread at the next save or at close) as one CheckpointError, its partial folder removed."""
    try:
      yield
    except Exception as error:  # orbax and tensorstore wrap the OSError in several types
      if not _disk_full(error):
        raise
      self._remove_partial()
      raise CheckpointError(self._full_message("no space left while writing a checkpoint")
                            ) from None

  def _remove_partial(self) -> None:
    """Removes the folders of unfinished saves, once none is still being written."""
    with contextlib.suppress(Exception):  # the failed save's own error, already reported
      self.manager.wait_until_finished()
    if jax.process_index() == 0:
      for partial in self.directory.glob("*.orbax-checkpoint-tmp*"):
        shutil.rmtree(partial, ignore_errors=True)
    self.manager.reload()

  def restore(self, step: int, like, data: grain.DatasetIterator | None = None):
    """Restores into the structure, dtypes and shardings of `like` (None: the tree as saved, on
    the default device); moves `data` (if given) to the saved position."""
    target = None if like is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    items = {"default": ocp.args.StandardRestore(target)}
    if data is not None:
      if not (self.directory / str(step) / "data").is_dir():
        raise CheckpointError(
            f"the checkpoint at step {step} in {self.directory} holds no stream position (it "
            "was written with data.pipeline='fixed'); resume it with data.pipeline='fixed', or "
            "use a new --workdir.")
      items["data"] = grain.checkpoint.CheckpointRestore(data)
    return self.manager.restore(step, args=ocp.args.Composite(**items))["default"]

  def restore_latest(self, like, data: grain.DatasetIterator | None = None
                     ) -> tuple[int | None, object]:
    """(step, tree) of the newest checkpoint that restores into `like` (and `data`, moved to its
    position), or (None, None) when there is none. A newer one that cannot be read (cut short,
    corrupt) is reported on stderr and skipped; CheckpointError if none of them can be read."""
    failures = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        tree = self.restore(step, like, data)
      except CheckpointError:
        raise
      except Exception as error:  # orbax raises many types for damaged files
        reason = " ".join(str(error).split())[:200]
        print(f"warning: the checkpoint at step {step} cannot be read ({type(error).__name__}: "
              f"{reason}); trying the one before.", file=sys.stderr)
        failures.append(step)
        continue
      self._set_aside(failures)
      return step, tree
    if failures:
      raise CheckpointError(f"no checkpoint in {self.directory} can be read (steps {failures}); "
                            "delete the folder to start afresh, or restore it from a backup.")
    return None, None

  def _set_aside(self, steps: list[int]) -> None:
    """Moves unreadable checkpoints to WORKDIR/unreadable_checkpoints/STEP (kept, not deleted),
    so that training can write those steps again."""
    if not steps or jax.process_index() > 0:
      return
    aside = self.directory.parent / "unreadable_checkpoints"
    aside.mkdir(exist_ok=True)
    for step in steps:
      target = aside / str(step)
      if target.exists():
        shutil.rmtree(target)
      shutil.move(str(self.directory / str(step)), target)
      print(f"warning: moved it to {target}.", file=sys.stderr)
    self.manager.reload()

  def close(self):
    try:
      with self._disk_full_reported():
        self.manager.wait_until_finished()
    finally:
      self.manager.close()
      self._quiet.uninstall()


class _DiskFullNoise(logging.Filter):
  """Keeps the tracebacks of a save that failed on a full disk off the console while
  installed, as `Checkpoints` reports it in one line: orbax's log records of the failure (it
  logs through absl) and tensorstore's "Event loop is closed" errors of the writes still in
  flight (reported through sys.unraisablehook). Other records and errors pass."""

  def install(self) -> _DiskFullNoise:
    logging.getLogger("absl").addFilter(self)
    self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
    return self

  def uninstall(self) -> None:
    logging.getLogger("absl").removeFilter(self)
    if sys.unraisablehook == self._unraisable:
      sys.unraisablehook = self._previous_hook

  def filter(self, record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    return not (_disk_full(error) or "No space left on device" in record.getMessage())

  def _unraisable(self, unraisable) -> None:
    error = unraisable.exc_value
    if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
      self._previous_hook(unraisable)


def _disk_full(error: BaseException) -> bool:
  """Whether `error` (or what it wraps) is ENOSPC, "No space left on device"."""
  while error is not None:
    if getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


def _folder_bytes(folder: pathlib.Path) -> int:
  return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


RUN_RECORD = "config.json"


def check_run_record(workdir: pathlib.Path, config: dict, force: bool = False) -> None:
  """Refuses to resume WORKDIR with a config that differs from the one recorded in
  WORKDIR/config.json (except run length, logging and eval fields: checks.RESUMABLE_CHANGES),
  unless `force`; ConfigError names the differences and the fix. A workdir without a record
  (fresh, or written before records existed) passes."""
  record = workdir / RUN_RECORD
  if not record.is_file():
    return
  try:
    saved = json.loads(record.read_text())
  except (OSError, json.JSONDecodeError) as error:
    raise ConfigError(f"{record} cannot be read ({error}); repair or delete it, or pass "
                      "--force_resume.") from None
  changes = config_differences(saved, config)
  if changes and not force:
    shown = "; ".join(changes[:4]) + (f"; and {len(changes) - 4} more" if len(changes) > 4 else "")
    raise ConfigError(f"{workdir} holds a run of another config ({shown}); use a new --workdir, "
                      "or pass --force_resume to resume it with this config.")


def write_run_record(workdir: pathlib.Path, config: dict) -> None:
  """WORKDIR/config.json: the config of the run, written atomically by process 0."""
  if jax.process_index() == 0:
    write_atomically(workdir / RUN_RECORD, json.dumps(config, indent=2, default=list).encode())



def restore_model(config, workdir: str | pathlib.Path, step: int | None = None,
                  compute: Compute = PLAIN) -> tuple[nnx.Module, int]:
  """The model of `config` (eval mode) with the weights of WORKDIR's checkpoint `step` (default:
  the newest readable one, as training resumes from; EMA weights when the run kept them).
  Reads the saved tree as it is, so neither the task nor the optimizer is built. Returns
  (model, step)."""
  checkpoints = Checkpoints(workdir, config.train.keep_checkpoints)
  try:
    if step:
      tree = checkpoints.restore(step, None)
    else:
      step, tree = checkpoints.restore_latest(None)
  finally:
    checkpoints.close()
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {pathlib.Path(workdir) / 'checkpoints'}; train "
                            "first with train.py --workdir, or pass --weights FILE.")
  weights = tree["model"]
  if config.train.ema_decay > 0 and tree.get("ema"):
    weights = _overlay(weights, tree["ema"])
  model = get_model(config.model.name, seed=config.seed, compute=compute,
                    **config.model.kwargs.to_dict())
  load_state_into(model, weights, f"the checkpoint at step {step} in {workdir}")
  model.eval()
  return model, step


def _overlay(tree: dict, values: dict) -> dict:
  """`tree` with the entries of the nested dict `values` put in place of its own."""
  return {k: _overlay(v, values[k]) if isinstance(v, dict) and k in values
          else values.get(k, v) for k, v in tree.items()}

"""Checks of a config and of the paths a run writes, done before any work starts: each mistake
raises ConfigError with one sentence that names the field and the fix."""

from __future__ import annotations

import json
import math
import os
import pathlib

import ml_collections

from sfm_jax.errors import ConfigError
from sfm_jax.models import COMPUTE_DTYPES

# Fields that may change between a run and its resumption (run length, logging, evaluation,
# kernels and precision, reading speed, and the learning rate: the remedy for a run that
# diverged); any other difference means the workdir holds another experiment.
RESUMABLE_CHANGES = ("train.steps", "train.epochs", "train.log_every", "train.eval_every",
                     "train.checkpoint_every", "train.keep_checkpoints", "train.cpu_kernels",
                     "train.compute_dtype", "train.require_improvement", "data.tfds_data_dir",
                     "data.stream.threads", "data.stream.buffer", "optim.learning_rate",
                     "eval.")


def _positive(config: ml_collections.ConfigDict, *names: str) -> None:
  for name in names:
    value = _get(config, name)
    if not value > 0:
      raise ConfigError(f"{name}={value}; it must be > 0.")


def _get(config: ml_collections.ConfigDict, dotted: str):
  value = config
  for part in dotted.split("."):
    value = value[part]
  return value


def check_eval_settings(settings: ml_collections.ConfigDict) -> None:
  """config.eval: noise levels and blur σ ≥ 0, tiles ≥ 0, a non-zero image count, a known
  compute dtype."""
  for name in ("sigma", "sigmas", "blur_sigmas"):
    values = settings.get(name)
    values = () if values is None else values if isinstance(values, tuple | list) else (values,)
    bad = [v for v in values if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0)]
    if bad:
      raise ConfigError(f"eval.{name} holds {bad}; noise levels and blur σ must be ≥ 0 "
                        "(e.g. --config.eval.sigmas=15,25,50).")
  if settings.get("tile", 0) < 0 or settings.get("tile_overlap", -1) < -1:
    raise ConfigError("eval.tile must be ≥ 0 (0: no tiling) and eval.tile_overlap ≥ 0 (-1: the "
                      "model's receptive field, which makes tiles exact).")
  if settings.get("max_val_images", -1) == 0:
    raise ConfigError("eval.max_val_images=0 leaves nothing to validate on; use -1 (all) or "
                      "a positive count.")
  _check_compute_dtype(settings, "eval")


def _check_compute_dtype(section: ml_collections.ConfigDict, name: str) -> None:
  dtype = section.get("compute_dtype", "float32")
  if dtype not in COMPUTE_DTYPES:
    raise ConfigError(f"{name}.compute_dtype={dtype!r}; use 'float32' or 'bfloat16'.")


def check_training_config(config: ml_collections.ConfigDict) -> None:
  """The fields train.py reads: run length, batch, data shapes, learning rate, channels."""
  steps, epochs = config.train.steps, config.train.epochs
  if steps == 0 or steps < -1:
    raise ConfigError(f"train.steps={steps}; use a positive number of steps, or -1 to train "
                      f"for train.epochs ({epochs}) epochs.")
  if steps == -1 and not epochs > 0:
    raise ConfigError(f"train.epochs={epochs} with train.steps=-1; set one of them > 0.")
  _positive(config, "train.batch_size", "train.log_every", "train.eval_every",
            "train.checkpoint_every", "train.keep_checkpoints", "data.patch_size",
            "data.stride")
  if not config.data.scales or min(config.data.scales) <= 0:
    raise ConfigError(f"data.scales={tuple(config.data.scales)}; give scales > 0, e.g. 1.0.")
  pipeline = config.data.get("pipeline", "fixed")
  if pipeline not in ("fixed", "stream"):
    raise ConfigError(f"data.pipeline={pipeline!r}; use 'fixed' (SFM's patch grid in memory) or "
                      "'stream' (random crops read as needed).")
  stream = config.data.get("stream")
  if stream is not None and not (stream.threads >= 0 and stream.buffer > 0 and stream.workers >= 0
                                 and stream.patches_per_image > 0):
    raise ConfigError(f"data.stream threads={stream.threads}, buffer={stream.buffer}, "
                      f"workers={stream.workers}, patches_per_image={stream.patches_per_image}; "
                      "use threads ≥ 0 (0: one per core), buffer > 0, workers ≥ 0 and "
                      "patches_per_image > 0.")
  _check_compute_dtype(config.train, "train")
  lr = config.optim.learning_rate
  if not (isinstance(lr, int | float) and math.isfinite(lr) and lr >= 0):
    raise ConfigError(f"optim.learning_rate={lr}; it must be a finite number ≥ 0.")
  if not 0 <= config.train.ema_decay < 1:
    raise ConfigError(f"train.ema_decay={config.train.ema_decay}; use 0 (off) or a value in "
                      "(0, 1), e.g. 0.999.")
  channels = config.data.channels
  if channels not in (1, 3):
    raise ConfigError(f"data.channels={channels}; use 1 (gray) or 3 (colour).")
  model_channels = config.model.kwargs.get("channels")
  if model_channels is not None and model_channels != channels:
    raise ConfigError(f"model.kwargs.channels={model_channels} but data.channels={channels}; "
                      "set both to the same value.")
  low_high = config.get("task", {}).get("sigma_range")
  if low_high is not None and not 0 <= low_high[0] <= low_high[1]:
    raise ConfigError(f"task.sigma_range={tuple(low_high)}; use 0 ≤ low ≤ high (0–255 scale).")
  check_eval_settings(config.eval)


def check_writable_folder(path: str | pathlib.Path, what: str) -> pathlib.Path:
  """`path` as a folder this process can write (created if missing), else ConfigError."""
  path = pathlib.Path(path).expanduser()
  if path.exists() and not path.is_dir():
    raise ConfigError(f"{what} {path} is a file, not a folder; pass a folder path.")
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise ConfigError(f"cannot create {what} {path} ({error.strerror}); pass a folder you can "
                      "write to.") from None
  if not os.access(path, os.W_OK | os.X_OK):
    raise ConfigError(f"{what} {path} is not writable; pass a folder you can write to.")
  return path


# Fields added after runs were first recorded, with the value such a run had: a record without
# them is read with these, so that a run started by an earlier version still resumes.
ADDED_FIELDS = {"data.pipeline": "fixed", "data.stream.threads": 0, "data.stream.buffer": 32,
                "data.stream.workers": 0, "data.stream.flips": True,
                "data.stream.patches_per_image": 1}


def config_differences(saved: dict, current: dict) -> list[str]:
  """The dotted fields whose values differ between two configs as JSON dicts
  (`json.loads(config.to_json())`), except the RESUMABLE_CHANGES; e.g.
  ["model.name: 'dncnn' -> 'memnet'"]. `saved` lacks none of the ADDED_FIELDS, nor a task field
  (a record written before the field was in the config ran with the task's default)."""
  before = {**ADDED_FIELDS, **_task_defaults(saved), **_flatten(saved)}
  after = _flatten(current)
  changes = []
  for key in sorted(set(before) | set(after)):
    if key.startswith(RESUMABLE_CHANGES) or before.get(key) == after.get(key):
      continue
    changes.append(f"{key}: {before.get(key, '(absent)')!r} -> {after.get(key, '(absent)')!r}")
  return changes


def _task_defaults(config: dict) -> dict:
  """{"task.FIELD": default} of the task of config["task"]["kind"] (`config_base.task_config`),
  as JSON values; {} for an unknown kind."""
  from sfm_jax.config_base import task_config  # imports the tasks; only needed here
  from sfm_jax.tasks import TASKS

  kind = config.get("task", {}).get("kind")
  if kind not in TASKS:
    return {}
  return _flatten({"task": json.loads(task_config(kind).to_json())})


def _flatten(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


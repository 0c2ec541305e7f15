"""The training loop: a jitted, data-parallel step over a ('data',) mesh of every device, orbax
checkpoints with automatic resume, clu metric writers, periodic validation, optional EMA."""

from __future__ import annotations

import json
import pathlib
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sfm_jax.checks import check_training_config, check_writable_folder
from sfm_jax.errors import ConfigError, TrainingError
from sfm_jax.inference import jit_apply
from sfm_jax.models import check_model_arguments, count_params, model_card
from sfm_jax.results import ValidationResult
from sfm_jax.train.checkpoints import Checkpoints, check_run_record, write_run_record
from sfm_jax.train.preemption import Interrupted, StopRequests
from sfm_jax.train.setup import (
  TrainingData,
  build_task,
  critic_configs,
  eval_state,
  from_pure,
  initial_state,
  make_validator,
  to_pure,
  training_step,
  use_cpu_kernels,
)
from sfm_jax.weights import save_weights


@jax.jit
def _first_nonfinite(first: jax.Array, finite: jax.Array, step: jax.Array) -> jax.Array:
  """The first step whose loss or weights were non-finite (-1 while there is none)."""
  return jnp.where((first < 0) & ~finite, step, first)


def _format_eta(seconds: float) -> str:
  minutes, secs = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}"


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       force_resume: bool = False) -> dict:
  """Trains `config` in `workdir` (resuming from its latest readable checkpoint) and validates
  at the end.

  Every setting and path is checked before work starts (ConfigError); a workdir that holds a
  run of another config is refused unless `force_resume`. A non-finite loss or weight stops
  the run before anything is saved from it, and a final model that scores below its input
  (train.require_improvement) is not written: both raise TrainingError.

  Returns the final `ValidationResult`'s metrics (e.g. "psnr", "ssim", "baseline_psnr": the
  noisy input's or bicubic's) and extras, its "setting" and "summary", "step", and "losses", the
  [(step, loss)] logged during this call. Processes other than 0 return "step" and "losses".
  """
  check_training_config(config)
  task = build_task(config)
  check_model_arguments(config.model.name, config.model.kwargs.to_dict())  # before the data
  workdir = check_writable_folder(workdir, "workdir")
  record = json.loads(config.to_json())
  check_run_record(workdir, record, force_resume)
  data = TrainingData(config)
  batch_size = config.train.batch_size
  if batch_size % jax.device_count():
    raise ConfigError(f"train.batch_size={batch_size} is not divisible by the "
                      f"{jax.device_count()} devices; use a multiple of {jax.device_count()}.")
  steps_per_epoch = data.steps_per_epoch
  total_steps = (config.train.steps if config.train.steps > 0
                 else config.train.epochs * steps_per_epoch)

  setup = initial_state(config, task, steps_per_epoch, use_cpu_kernels(config))
  model, defs, schedule = setup.model, setup.defs, setup.schedule
  ema_decay = config.train.ema_decay
  # Auto axes: XLA propagates the batch sharding through the ops (global BatchNorm statistics).
  mesh = jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  replicated = NamedSharding(mesh, P())
  checkpoints = Checkpoints(workdir, config.train.keep_checkpoints)
  state = jax.device_put(setup.state, replicated)  # restored straight into the global sharding
  start_step, restored = checkpoints.restore_latest(to_pure(state), data.stream)
  if start_step:
    state = from_pure(state, restored)
    say(f"Resuming from the checkpoint at step {start_step} in {workdir}.")
  start_step = start_step or 0
  write_run_record(workdir, record)

  step_fn, frozen = training_step(config, task, setup, data.val_images)
  frozen = jax.device_put(frozen, replicated)
  step_fn = jax.jit(step_fn, donate_argnums=0, out_shardings=(replicated, replicated))
  eval_fn = jit_apply(setup.eval_def)
  validator = make_validator(task, config, data.val_images)

  def validate(state, step) -> ValidationResult | None:
    """Validation on process 0 (the others return None), from its copy of the weights."""
    if jax.process_index() > 0:
      return None
    model_state = _local(eval_state(state, ema_decay))
    result = validator(lambda *inputs: eval_fn(model_state, *inputs), data.val_images,
                       _local(state.get("task")))
    writer.write_scalars(step, {f"val_{k}": v for k, v in result.metrics.items()})
    return result

  from clu import metric_writers, periodic_actions  # imports TensorFlow (~6 s): after the checks

  writer = metric_writers.create_default_writer(str(workdir),
                                                just_logging=jax.process_index() > 0)
  progress = periodic_actions.ReportProgress(num_train_steps=total_steps, writer=writer,
                                             every_steps=config.train.log_every)
  say(f"Training {config.model.name} ({count_params(model):,} parameters) on {data.describe()} "
      f"({steps_per_epoch} steps/epoch), {total_steps:,} steps, batch {batch_size} over "
      f"{jax.device_count()} device(s). The loss printed is the {config.task.kind} task's "
      f"training objective on each step's batch; validation every {config.train.eval_every} "
      "steps and at the end.")
  batch_sharding = NamedSharding(mesh, P("data"))
  iterator = data.batches_on_devices(start_step, batch_sharding)
  pace, last_saved, losses = _Pace(start_step, total_steps), start_step, []
  first_nonfinite = jnp.int32(-1)
  stops = StopRequests().install()  # SIGTERM / Ctrl-C: save, then stop (preemption.py)
  try:
    for step in range(start_step, total_steps):
      state, metrics = step_fn(state, next(iterator), jnp.int32(step), frozen)
      first_nonfinite = _first_nonfinite(first_nonfinite, metrics.pop("finite"), step + 1)
      done = step + 1
      progress(done)
      log = done % config.train.log_every == 0 or done == total_steps
      save = done % config.train.checkpoint_every == 0 or done == total_steps
      evaluate = done % config.train.eval_every == 0 and done != total_steps
      if log or save or evaluate:
        _stop_if_nonfinite(int(first_nonfinite), last_saved, config)
      if log:
        loss = float(metrics["loss"])
        losses.append((done, loss))
        scalars = {k: float(v) for k, v in metrics.items()}
        writer.write_scalars(done, {**scalars, "learning_rate": float(schedule(step))})
        extra = "".join(f"  {k} {v:.4g}" for k, v in scalars.items() if k != "loss")
        say(f"step {done}/{total_steps}  loss {loss:.4f}{extra}  {pace.after(done)}")
      if evaluate:
        result = validate(state, done)
        if result is not None:
          say(f"step {done}: validation {result.headline}")
      if save:
        checkpoints.save(done, to_pure(state), data.stream)
        last_saved = done
      if (signum := stops.agreed()) is not None:
        _stop_if_nonfinite(int(first_nonfinite), last_saved, config)
        if last_saved != done:
          checkpoints.save(done, to_pure(state), data.stream)
        raise Interrupted(signum, done, f"stopped by {signal.Signals(signum).name} at step "
                          f"{done}/{total_steps} with a checkpoint saved there in {workdir}; "
                          "rerun the same command to resume.")
  except KeyboardInterrupt:
    resume = (f"the same command resumes from the last checkpoint, step {last_saved}"
              if last_saved else "no checkpoint was written, so the same command starts afresh")
    message = f"stopped at once; {resume} (in {workdir})."
    raise Interrupted(signal.SIGINT, last_saved, message) from None
  finally:
    stops.uninstall()
    iterator.close()
    data.close()
    checkpoints.close()

  final = validate(state, total_steps)
  writer.flush()
  if final is None:
    return {"step": total_steps, "losses": losses}
  if config.train.require_improvement and final.worse_than_baseline():
    raise TrainingError(
        f"training ended below its input: {final.summary}, so {workdir / 'weights.msgpack'} "
        f"was not written (the loss may have exploded: lower optim.learning_rate, now "
        f"{config.optim.learning_rate}). The checkpoints are kept; to write these weights "
        "anyway, rerun with --config.train.require_improvement=False.")
  _save_networks(workdir, config, defs, state, ema_decay)
  say(final.final_line(len(data.val_images)))
  weights = workdir / "weights.msgpack"
  say(f"Weights: {weights}\nNext: python eval.py --weights {weights} --dataset FOLDER   "
      f"(scores it on your test images)" + (
          f"\n      sfm-restore --weights {weights} --input PHOTOS --output RESTORED   "
          "(restores your own images)"
          if model_card(config.model.name, config.model.kwargs.to_dict()).restores_images
          else ""))
  return {"step": total_steps, "losses": losses, **final.metrics, **final.extras,
          "setting": final.setting, "summary": final.summary}


class _Pace:
  """Steps per second and ETA between log lines; the first line reports the time of its steps
  instead (they include compilation, so a rate would mislead)."""

  def __init__(self, start_step: int, total_steps: int):
    self.total, self.start = total_steps, start_step
    self.last = (start_step, time.time())

  def after(self, done: int) -> str:
    now, (before, then) = time.time(), self.last
    first = before == self.start
    self.last = (done, now)
    if first:
      return f"{now - then:.1f} s (with compilation)"
    rate = (done - before) / max(now - then, 1e-9)
    return f"{rate:.2f} steps/s  ETA {_format_eta((self.total - done) / rate)}"


def say(line: str) -> None:
  """Prints a progress line on process 0 only."""
  if jax.process_index() == 0:
    print(line, flush=True)


def _local(tree):
  """`tree`'s replicated arrays as arrays on this process's own device (for validation, which
  process 0 runs alone)."""
  if jax.process_count() == 1 or tree is None:
    return tree
  return jax.tree.map(lambda x: x.addressable_data(0), tree)


def _stop_if_nonfinite(first_nonfinite: int, last_saved: int,
                       config: ml_collections.ConfigDict) -> None:
  """TrainingError naming the step where the loss or weights stopped being finite and the last
  checkpoint, which is finite (nothing is saved after a non-finite step)."""
  if first_nonfinite < 0:
    return
  resume = (f"training resumes from the last checkpoint, step {last_saved}, which is finite"
            if last_saved else "no checkpoint was written, so training starts afresh")
  raise TrainingError(
      f"the loss or the weights became non-finite (NaN or inf) at step {first_nonfinite}; "
      f"nothing from it was saved: lower optim.learning_rate (now "
      f"{config.optim.learning_rate}) and rerun: {resume}.")


def _save_networks(workdir: pathlib.Path, config: ml_collections.ConfigDict, defs: dict,
                   state: dict, ema_decay: float) -> None:
  """WORKDIR/weights.msgpack (the main model, EMA weights if kept) and WORKDIR/<critic>.msgpack."""
  if jax.process_index() > 0:  # one writer
    return
  trained = nnx.merge(defs["model"][0], _local(eval_state(state, ema_decay)))
  save_weights(workdir / "weights.msgpack", trained, config.model.name,
               config.model.kwargs.to_dict(),
               {"task": config.task.kind, "eval": config.eval.to_dict()})
  for name, critic in critic_configs(config).items():
    network = nnx.merge(defs[name][0], _local(state["critics"][name]["model"]))
    save_weights(workdir / f"{name}.msgpack", network, critic.model.name,
                 critic.model.get("kwargs", {}).to_dict())


"""The training loop: a jitted, data-parallel step over a ('data',) mesh of every device, orbax
checkpoints with automatic resume, clu metric writers, periodic validation, optional EMA."""

from __future__ import annotations

import dataclasses
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from clu import metric_writers, periodic_actions
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sfm_jax.data.images import load_source
from sfm_jax.data.patches import build_patches
from sfm_jax.data.pipeline import PatchBatches, Prefetcher
from sfm_jax.inference import SIZE_MULTIPLE, jit_apply
from sfm_jax.models import count_params, get_model
from sfm_jax.tasks.base import Task
from sfm_jax.tasks.denoise import DenoiseTask
from sfm_jax.tasks.ikc import IKCTask
from sfm_jax.tasks.sr import SRTask
from sfm_jax.train.checkpoints import Checkpoints
from sfm_jax.weights import load_state_into, load_weights, save_weights


class TrainingError(RuntimeError):
  """Training cannot go on (e.g. the loss diverged); the message says what to change."""


def build_model(config: ml_collections.ConfigDict) -> nnx.Module:
  """The config's model, initialised from `model.init_weights` when given (fine-tuning)."""
  model = get_model(config.model.name, seed=config.seed, **config.model.kwargs.to_dict())
  if config.model.get("init_weights"):
    source, name, _ = load_weights(config.model.init_weights)
    if name != config.model.name:
      raise ValueError(f"{config.model.init_weights} holds a {name!r} model but the config "
                       f"trains {config.model.name!r}; set model.name={name!r}.")
    load_state_into(model, nnx.to_pure_dict(nnx.state(source)), config.model.init_weights)
  return model


def build_task(config: ml_collections.ConfigDict) -> Task:
  """The task of config.task.kind: "sr", "ikc" or a denoising kind (supervised / n2n / n2s)."""
  task_class = {"sr": SRTask, "ikc": IKCTask}.get(config.task.kind, DenoiseTask)
  fields = {f.name for f in dataclasses.fields(task_class)}
  unknown = set(config.task.keys()) - fields
  if unknown:
    raise ValueError(f"unknown task fields {sorted(unknown)}; known: {sorted(fields)}.")
  values = config.task.to_dict()
  for key in ("sigma_range", "blur_sigma_range"):
    if key in values:
      values[key] = tuple(float(s) for s in values[key])
  return task_class(**values)


def build_schedule(o: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
  """optim.schedule "step": lr × decay_factor at each of decay_epochs (the SFM scripts);
  "cosine_restarts": cosine from lr to min_learning_rate over every cycle_steps, restarting
  (IKC's CosineAnnealingLR_Restart)."""
  if o.schedule == "cosine_restarts":
    cycle = {"init_value": o.learning_rate, "peak_value": o.learning_rate, "warmup_steps": 0,
             "decay_steps": o.cycle_steps, "end_value": o.min_learning_rate}
    return optax.sgdr_schedule([cycle] * o.cycles)
  if o.schedule != "step":
    raise ValueError(f"optim.schedule={o.schedule!r}; use 'step' or 'cosine_restarts'.")
  boundaries = {int(epoch * steps_per_epoch): o.decay_factor for epoch in o.decay_epochs}
  return optax.piecewise_constant_schedule(o.learning_rate, boundaries)


def build_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int):
  """Adam on `build_schedule` with optional PyTorch-style L2 weight decay (added to the
  gradient, as torch.optim.Adam does)."""
  o = config.optim
  schedule = build_schedule(o, steps_per_epoch)
  adam = optax.adam(schedule, b1=o.b1, b2=o.b2, eps=o.eps)
  tx = optax.chain(optax.add_decayed_weights(o.weight_decay), adam) if o.weight_decay else adam
  return tx, schedule


def make_train_step(model_def, optimizer_def, frozen_def, task, ema_decay: float, seed: int):
  """A pure step (state, uint8 patches, step, frozen weights) -> (state, metrics); noise and SFM
  are drawn on device from fold_in(key(seed), step), so the step is a function of its inputs
  only. The task may make several updates on one batch (`task.updates_per_batch`)."""
  base_key = jax.random.key(seed)

  def step_fn(state, patches, step, frozen_state):
    model = nnx.merge(model_def, state["model"])
    optimizer = nnx.merge(optimizer_def, state["optimizer"])
    bound = task.bind(nnx.merge(frozen_def, frozen_state))
    batch = bound.synthesize(jax.random.fold_in(base_key, step),
                             patches.astype(jnp.float32) / 255.0, step)

    def loss_of(model, batch):
      output = bound.predict(model, batch)
      return bound.loss(output, batch), output

    losses = []
    for _ in range(task.updates_per_batch):
      (loss, output), grads = nnx.value_and_grad(loss_of, has_aux=True)(model, batch)
      optimizer.update(model, grads)
      batch = bound.next_batch(batch, output)
      losses.append(loss)
    loss = jnp.mean(jnp.stack(losses))
    new = {"model": nnx.state(model), "optimizer": nnx.state(optimizer), "ema": state["ema"]}
    if ema_decay > 0:
      params = nnx.state(model, nnx.Param)
      new["ema"] = jax.tree.map(lambda e, p: ema_decay * e + (1 - ema_decay) * p,
                                state["ema"], params)
    return new, {"loss": loss}

  return step_fn


def _eval_state(state: dict, ema_decay: float):
  """The model state to evaluate: the EMA weights in place of the parameters if kept."""
  if ema_decay <= 0:
    return state["model"]
  model_state = jax.tree.map(lambda x: x, state["model"])
  nnx.replace_by_pure_dict(model_state, nnx.to_pure_dict(state["ema"]))
  return model_state


def _to_pure(state: dict) -> dict:
  return {k: (nnx.to_pure_dict(v) if v is not None else {}) for k, v in state.items()}


def _from_pure(template: dict, pure: dict) -> dict:
  out = {}
  for key, value in template.items():
    if value is None:
      out[key] = None
      continue
    value = jax.tree.map(lambda x: x, value)
    nnx.replace_by_pure_dict(value, pure[key])
    out[key] = value
  return out


def _initial_state(config: ml_collections.ConfigDict, steps_per_epoch: int = 1):
  """(model, model_def, optimizer_def, eval_def, state, schedule) for `config`, untrained."""
  model = build_model(config)
  model.eval()
  eval_def, _ = nnx.split(model)
  model.train()
  tx, schedule = build_optimizer(config, steps_per_epoch)
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  model_def, model_state = nnx.split(model)
  optimizer_def, optimizer_state = nnx.split(optimizer)
  ema = None
  if config.train.ema_decay > 0:  # its own buffers: the step donates the whole state
    ema = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
  state = {"model": model_state, "optimizer": optimizer_state, "ema": ema}
  return model, model_def, optimizer_def, eval_def, state, schedule


def restore_model(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                  step: int | None = None) -> tuple[nnx.Module, int]:
  """The model of `config` with the weights of WORKDIR's checkpoint `step` (default latest;
  EMA weights when the run kept them). Returns (model, step)."""
  _, model_def, _, _, state, _ = _initial_state(config)
  checkpoints = Checkpoints(workdir, config.train.keep_checkpoints)
  try:
    step = step or checkpoints.latest_step()
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {pathlib.Path(workdir) / 'checkpoints'}; train "
                              "first with train.py --workdir, or pass --weights FILE.")
    state = _from_pure(state, checkpoints.restore(step, _to_pure(state)))
  finally:
    checkpoints.close()
  return nnx.merge(model_def, _eval_state(state, config.train.ema_decay)), step


def _format_eta(seconds: float) -> str:
  minutes, secs = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}"


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains `config` in `workdir` (resuming from its latest checkpoint) and validates at the end.

  Returns the final validation metrics {"psnr", "ssim", "baseline_psnr" (noisy input or
  bicubic), "step"} and "losses", the [(step, loss)] logged during this call.
  """
  workdir = pathlib.Path(workdir)
  task = build_task(config)
  nnx.eval_shape(lambda: get_model(config.model.name, **config.model.kwargs.to_dict()))  # fail fast
  workdir.mkdir(parents=True, exist_ok=True)
  channels = config.data.channels
  data_dir = config.data.tfds_data_dir or None
  train_images = load_source(config.data.source, "train", channels, data_dir)
  if config.data.max_train_images > 0:
    train_images = train_images[:config.data.max_train_images]
  val_images = load_source(config.data.val_source, "val", channels, data_dir)
  if config.eval.max_val_images > 0:
    val_images = val_images[:config.eval.max_val_images]
  patches = build_patches(train_images, config.data.patch_size, config.data.stride,
                          tuple(config.data.scales), config.data.aug_copies, config.seed)
  batch_size = config.train.batch_size
  if batch_size % jax.device_count():
    raise ValueError(f"train.batch_size={batch_size} is not divisible by the "
                     f"{jax.device_count()} devices; use a multiple of {jax.device_count()}.")
  batches = PatchBatches(patches, batch_size, config.seed)
  total_steps = (config.train.steps if config.train.steps > 0
                 else config.train.epochs * batches.steps_per_epoch)

  model, model_def, optimizer_def, eval_def, state, schedule = _initial_state(
      config, batches.steps_per_epoch)
  ema_decay = config.train.ema_decay

  # Auto axes: XLA propagates the batch sharding through the ops (global BatchNorm statistics).
  mesh = jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  replicated = NamedSharding(mesh, P())
  data_sharding = NamedSharding(mesh, P("data"))
  checkpoints = Checkpoints(workdir, config.train.keep_checkpoints)
  start_step = checkpoints.latest_step() or 0
  if start_step:
    restored = checkpoints.restore(start_step, _to_pure(state))
    state = _from_pure(state, restored)
    print(f"Resuming from the checkpoint at step {start_step} in {workdir}.")
  state = jax.device_put(state, replicated)

  frozen_def, frozen_state = nnx.split(task.frozen_networks())
  frozen_state = jax.device_put(frozen_state, replicated)
  step_fn = jax.jit(
      make_train_step(model_def, optimizer_def, frozen_def, task, ema_decay, config.seed),
      donate_argnums=0, out_shardings=(replicated, replicated))
  eval_fn = jit_apply(eval_def)
  multiple = SIZE_MULTIPLE.get(config.model.name, 1)

  def validate(state, step):
    model_state = _eval_state(state, ema_decay)
    metrics = task.validate(lambda *inputs: eval_fn(model_state, *inputs), val_images, config,
                            multiple)
    writer.write_scalars(step, {"val_psnr": metrics["psnr"], "val_ssim": metrics["ssim"]})
    return metrics

  writer = metric_writers.create_default_writer(str(workdir),
                                                just_logging=jax.process_index() > 0)
  progress = periodic_actions.ReportProgress(num_train_steps=total_steps, writer=writer,
                                             every_steps=config.train.log_every)
  print(f"Training {config.model.name} ({count_params(model):,} parameters) on "
        f"{len(patches):,} patches ({batches.steps_per_epoch} steps/epoch), {total_steps:,} "
        f"steps, batch {batch_size} over {jax.device_count()} device(s).")
  iterator = Prefetcher(batches(start_step), data_sharding)
  started, last_good, losses = time.time(), start_step, []
  try:
    for step in range(start_step, total_steps):
      state, metrics = step_fn(state, next(iterator), jnp.int32(step), frozen_state)
      done = step + 1
      progress(done)
      if done % config.train.log_every == 0 or done == total_steps:
        loss = float(metrics["loss"])
        if not np.isfinite(loss):
          raise TrainingError(
              f"the loss became {loss} at step {done}; lower optim.learning_rate (now "
              f"{config.optim.learning_rate}) and rerun: training resumes from the last good "
              f"checkpoint (step {last_good}).")
        losses.append((done, loss))
        writer.write_scalars(done, {"loss": loss, "learning_rate": float(schedule(step))})
        rate = (done - start_step) / (time.time() - started)
        print(f"step {done}/{total_steps}  loss {loss:.4f}  {rate:.1f} steps/s  "
              f"ETA {_format_eta((total_steps - done) / rate)}", flush=True)
      if done % config.train.eval_every == 0 and done != total_steps:
        m = validate(state, done)
        print(f"step {done}: validation {m['setting']} PSNR {m['psnr']:.2f} dB")
      if done % config.train.checkpoint_every == 0 or done == total_steps:
        checkpoints.save(done, _to_pure(state))
        last_good = done
  finally:
    iterator.close()
    checkpoints.close()

  final = validate(state, total_steps)
  writer.flush()
  trained = nnx.merge(model_def, _eval_state(state, ema_decay))
  save_weights(workdir / "weights.msgpack", trained, config.model.name,
               config.model.kwargs.to_dict())
  before, after = final["labels"]
  print(f"Validation on {len(val_images)} held-out images at {final['setting']}: "
        f"{before} {final['baseline_psnr']:.2f} dB -> {after} {final['psnr']:.2f} dB")
  return {"step": total_steps, "losses": losses, **final}

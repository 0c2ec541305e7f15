"""The training loop: a jitted, data-parallel step over a ('data',) mesh of every device, orbax
checkpoints with automatic resume, clu metric writers, periodic validation, optional EMA."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
import typing

import grain
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sfm_jax import pretrained
from sfm_jax.checks import check_training_config, check_writable_folder
from sfm_jax.data import streaming
from sfm_jax.data.images import load_source
from sfm_jax.data.patches import build_patches
from sfm_jax.data.pipeline import PatchBatches, Prefetcher, on_devices
from sfm_jax.errors import ConfigError, TrainingError
from sfm_jax.inference import jit_apply
from sfm_jax.models import (
  check_model_arguments,
  count_params,
  get_model,
  model_card,
  set_compute_dtype,
)
from sfm_jax.tasks import task_class as find_task_class
from sfm_jax.tasks.base import Task, ValidationResult, config_fields
from sfm_jax.train.checkpoints import Checkpoints, check_run_record, write_run_record
from sfm_jax.weights import load_state_into, load_weights, save_weights


def use_cpu_kernels(config: ml_collections.ConfigDict) -> bool:
  """Whether training builds its networks with the CPU kernels (`models.layers.cpu_kernels`):
  train.cpu_kernels "auto" (on when JAX runs on the CPU), "on" or "off"."""
  setting = config.train.get("cpu_kernels", "auto")
  if setting not in ("auto", "on", "off"):
    raise ValueError(f"train.cpu_kernels={setting!r}; use 'auto', 'on' or 'off'.")
  return setting == "on" or (setting == "auto" and jax.default_backend() == "cpu")


def build_model(config: ml_collections.ConfigDict, cpu_kernels: bool = False) -> nnx.Module:
  """The config's model, initialised from `model.init_weights` (a weights file or a pretrained
  name such as sfm:dncnn_b) when given (fine-tuning);
  plain Flax layers, or the CPU training kernels with `cpu_kernels`."""
  model = get_model(config.model.name, seed=config.seed, cpu_kernels=cpu_kernels,
                    **config.model.kwargs.to_dict())
  if config.model.get("init_weights"):
    source, name, _ = load_weights(pretrained.resolve(config.model.init_weights))
    if name != config.model.name:
      raise ValueError(f"{config.model.init_weights} holds a {name!r} model but the config "
                       f"trains {config.model.name!r}; set model.name={name!r}.")
    load_state_into(model, nnx.to_pure_dict(nnx.state(source)), config.model.init_weights)
  return model


def build_task(config: ml_collections.ConfigDict) -> Task:
  """The task of config.task.kind (sfm_jax.tasks.TASKS, else a denoising kind), its fields
  set from config.task (lists become the tuples the dataclass declares)."""
  task_class = find_task_class(config.task.kind)
  fields = config_fields(task_class)
  unknown = set(config.task.keys()) - set(fields)
  if unknown:
    raise ValueError(f"unknown task fields {sorted(unknown)}; known: {sorted(fields)}.")
  hints = typing.get_type_hints(task_class)
  return task_class(**{name: _as_declared(value, hints[name])
                       for name, value in config.task.to_dict().items()})


def _as_declared(value, hint):
  """`value` as the declared type where it is a tuple, e.g. tuple[float, float] from a list
  of ints."""
  if typing.get_origin(hint) is not tuple or not isinstance(value, list | tuple):
    return value
  kinds = typing.get_args(hint)
  if len(kinds) == 2 and kinds[1] is Ellipsis:
    kinds = kinds[:1] * len(value)
  if len(kinds) != len(value):
    raise ValueError(f"{value} has {len(value)} entries; the field takes {len(kinds)}.")
  return tuple(kind(v) for kind, v in zip(kinds, value, strict=True))


def build_schedule(o: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
  """optim.schedule "step": lr × decay_factor at each of decay_epochs (the SFM scripts) and of
  decay_steps;
  "cosine_restarts": cosine from lr to min_learning_rate over every cycle_steps, restarting
  (IKC's CosineAnnealingLR_Restart); "linear_to_zero": constant until step decay_steps[0], then
  linearly to 0 at step decay_steps[1] (FCA's LambdaLR)."""
  if o.schedule == "cosine_restarts":
    cycle = {"init_value": o.learning_rate, "peak_value": o.learning_rate, "warmup_steps": 0,
             "decay_steps": o.cycle_steps, "end_value": o.min_learning_rate}
    return optax.sgdr_schedule([cycle] * o.cycles)
  if o.schedule == "linear_to_zero":
    start, end = (int(step) for step in o.decay_steps)
    return optax.join_schedules(
        [optax.constant_schedule(o.learning_rate),
         optax.linear_schedule(o.learning_rate, 0.0, end - start)], [start])
  if o.schedule != "step":
    raise ValueError(f"optim.schedule={o.schedule!r}; use 'step', 'cosine_restarts' or "
                     "'linear_to_zero'.")
  boundaries = {int(epoch * steps_per_epoch): o.decay_factor for epoch in o.decay_epochs}
  boundaries.update({int(step): o.decay_factor for step in o.get("decay_steps", ())})
  return optax.piecewise_constant_schedule(o.learning_rate, boundaries)


def build_optimizer(o: ml_collections.ConfigDict, steps_per_epoch: int):
  """Adam on `build_schedule(o)` with optional PyTorch-style L2 weight decay (added to the
  gradient, as torch.optim.Adam does). `o` is an optim ConfigDict (config.optim)."""
  schedule = build_schedule(o, steps_per_epoch)
  adam = optax.adam(schedule, b1=o.b1, b2=o.b2, eps=o.eps)
  tx = optax.chain(optax.add_decayed_weights(o.weight_decay), adam) if o.weight_decay else adam
  return tx, schedule


def critic_configs(config: ml_collections.ConfigDict) -> dict[str, ml_collections.ConfigDict]:
  """config.critics by name, each {"model": {name, kwargs}, "optim": the main optim with the
  critic's overrides}: the networks trained side by side with the main model."""
  critics = {}
  for name, critic in config.get("critics", ml_collections.ConfigDict()).items():
    optim = ml_collections.ConfigDict(config.optim.to_dict())
    optim.update(critic.get("optim", {}))
    critics[name] = ml_collections.ConfigDict({"model": critic.model.to_dict(), "optim": optim})
  return critics


def _split_networks(networks: dict, optimizers: dict) -> tuple[dict, dict]:
  """(graph defs, states) of {name: (network, optimizer)}: the pure form the step carries."""
  defs, states = {}, {}
  for name, network in networks.items():
    network_def, network_state = nnx.split(network)
    optimizer_def, optimizer_state = nnx.split(optimizers[name])
    defs[name] = (network_def, optimizer_def)
    states[name] = {"model": network_state, "optimizer": optimizer_state}
  return defs, states


def make_train_step(defs: dict, frozen_def, task: Task, ema_decay: float, seed: int):
  """A pure step (state, uint8 patches, step, frozen) -> (state, metrics).

  `defs` maps "model" and every critic name to (network def, optimizer def); `state` holds
  "model" / "optimizer" / "ema" of the main network, "critics" by name and the task's "task"
  state; `frozen` is {"networks": frozen weights, "constants": task constants}. Noise and SFM are
  drawn on device from fold_in(key(seed), step), so the step is a function of its inputs only.
  metrics["finite"] says whether the loss and every trained weight are finite after the step.
  """
  base_key = jax.random.key(seed)

  def step_fn(state, patches, step, frozen):
    states = {"model": {"model": state["model"], "optimizer": state["optimizer"]},
              **state.get("critics", {})}
    networks = {n: nnx.merge(defs[n][0], s["model"]) for n, s in states.items()}
    optimizers = {n: nnx.merge(defs[n][1], s["optimizer"]) for n, s in states.items()}
    bound = task.bind(nnx.merge(frozen_def, frozen["networks"]), frozen["constants"],
                      state.get("task"))
    batch = bound.synthesize(jax.random.fold_in(base_key, step),
                             patches.astype(jnp.float32) / 255.0, step)
    metrics = bound.update(networks, optimizers, batch)
    new = {"model": nnx.state(networks["model"]),
           "optimizer": nnx.state(optimizers["model"]), "ema": state["ema"]}
    if "critics" in state:
      new["critics"] = {n: {"model": nnx.state(networks[n]),
                            "optimizer": nnx.state(optimizers[n])} for n in state["critics"]}
    if "task" in state:
      new["task"], task_metrics = bound.advance(state["task"], networks, step)
      metrics = {**metrics, **task_metrics}
    if ema_decay > 0:
      params = nnx.state(networks["model"], nnx.Param)
      new["ema"] = jax.tree.map(lambda e, p: ema_decay * e + (1 - ema_decay) * p,
                                state["ema"], params)
    trained = [nnx.state(network, nnx.Param) for network in networks.values()]
    metrics = {**metrics, "finite": jnp.isfinite(metrics["loss"]) & _all_finite(trained)}
    return new, metrics

  return step_fn


def _all_finite(tree) -> jax.Array:
  """Whether every entry of every array in `tree` is finite (a bool scalar)."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


@jax.jit
def _first_nonfinite(first: jax.Array, finite: jax.Array, step: jax.Array) -> jax.Array:
  """The first step whose loss or weights were non-finite (-1 while there is none)."""
  return jnp.where((first < 0) & ~finite, step, first)


def _eval_state(state: dict, ema_decay: float):
  """The model state to evaluate: the EMA weights in place of the parameters if kept."""
  if ema_decay <= 0:
    return state["model"]
  model_state = jax.tree.map(lambda x: x, state["model"])
  nnx.replace_by_pure_dict(model_state, nnx.to_pure_dict(state["ema"]))
  return model_state


def _to_pure(tree):
  """The training state as nested dicts of arrays (what orbax saves)."""
  if isinstance(tree, nnx.State):
    return nnx.to_pure_dict(tree)
  if isinstance(tree, dict):
    return {k: _to_pure(v) for k, v in tree.items()}
  return {} if tree is None else tree


def _from_pure(template, pure):
  """`template` (a training state) with the values of `pure` (from `_to_pure`)."""
  if isinstance(template, nnx.State):
    value = jax.tree.map(lambda x: x, template)
    nnx.replace_by_pure_dict(value, pure)
    return value
  if isinstance(template, dict):
    return {k: _from_pure(v, pure[k]) for k, v in template.items()}
  return None if template is None else pure


def _with_optimizer(network: nnx.Module, optim: ml_collections.ConfigDict, steps_per_epoch: int):
  tx, schedule = build_optimizer(optim, steps_per_epoch)
  return nnx.Optimizer(network, tx, wrt=nnx.Param), schedule


@dataclasses.dataclass
class InitialState:
  """The untrained training state of a config.

  model: the main network (train mode). defs: {"model" and every critic name: (network graph
  def, optimizer graph def)}. eval_def: the main network's graph def in eval mode. state: the
  pure training state ("model", "optimizer", "ema", ["critics"], ["task"]). schedule: the main
  learning-rate schedule.
  """
  model: nnx.Module
  defs: dict
  eval_def: typing.Any
  state: dict
  schedule: optax.Schedule


def initial_state(config: ml_collections.ConfigDict, task: Task, steps_per_epoch: int = 1,
                  cpu_kernels: bool = False) -> InitialState:
  """The untrained state of `config`: the main model, its critics (config.critics) and the
  task state. Trained networks compute in train.compute_dtype, validation in
  eval.compute_dtype (`models.set_compute_dtype`); the state is float32 either way."""
  model = build_model(config, cpu_kernels)
  model.eval()
  eval_def, _ = nnx.split(set_compute_dtype(model, config.eval.get("compute_dtype", "float32")))
  model.train()
  compute_dtype = config.train.get("compute_dtype", "float32")
  set_compute_dtype(model, compute_dtype)
  optimizer, schedule = _with_optimizer(model, config.optim, steps_per_epoch)
  networks, optimizers = {"model": model}, {"model": optimizer}
  for name, critic in critic_configs(config).items():
    networks[name] = get_model(critic.model.name, seed=config.seed + 1, cpu_kernels=cpu_kernels,
                               **critic.model.get("kwargs", {}))
    networks[name].train()
    set_compute_dtype(networks[name], compute_dtype)
    optimizers[name], _ = _with_optimizer(networks[name], critic.optim, steps_per_epoch)
  defs, states = _split_networks(networks, optimizers)
  ema = None
  if config.train.ema_decay > 0:  # its own buffers: the step donates the whole state
    ema = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
  state = {**states.pop("model"), "ema": ema}
  if states:
    state["critics"] = states
  task_state = task.initial_state()
  if task_state:
    state["task"] = jax.tree.map(jnp.asarray, task_state)
  return InitialState(model, defs, eval_def, state, schedule)


def restore_model(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                  step: int | None = None) -> tuple[nnx.Module, int]:
  """The model of `config` with the weights of WORKDIR's checkpoint `step` (default: the newest
  readable one; EMA weights when the run kept them). Returns (model, step)."""
  initial = initial_state(config, build_task(config))
  defs, state = initial.defs, initial.state
  checkpoints = Checkpoints(workdir, config.train.keep_checkpoints)
  try:
    if step:
      restored = checkpoints.restore(step, _to_pure(state))
    else:  # the newest readable one, as training resumes from
      step, restored = checkpoints.restore_latest(_to_pure(state))
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {pathlib.Path(workdir) / 'checkpoints'}; train "
                              "first with train.py --workdir, or pass --weights FILE.")
    state = _from_pure(state, restored)
  finally:
    checkpoints.close()
  return nnx.merge(defs["model"][0], _eval_state(state, config.train.ema_decay)), step


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
  train_data, val_images = _load_data(config)
  batch_size = config.train.batch_size
  if batch_size % jax.device_count():
    raise ConfigError(f"train.batch_size={batch_size} is not divisible by the "
                      f"{jax.device_count()} devices; use a multiple of {jax.device_count()}.")
  stream = _stream(config, train_data) if _streaming(config) else None
  if stream:
    steps_per_epoch = streaming.steps_per_epoch(train_data, batch_size,
                                                config.data.stream.patches_per_image)
  else:
    batches = PatchBatches(train_data, batch_size, config.seed)
    steps_per_epoch = batches.steps_per_epoch
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
  start_step, restored = checkpoints.restore_latest(_to_pure(state), stream)
  if start_step:
    state = _from_pure(state, restored)
    say(f"Resuming from the checkpoint at step {start_step} in {workdir}.")
  start_step = start_step or 0
  write_run_record(workdir, record)

  frozen_def, frozen_networks = nnx.split(task.frozen_networks())
  frozen = jax.device_put({"networks": frozen_networks,
                           "constants": task.constants_for(val_images, config)}, replicated)
  step_fn = jax.jit(make_train_step(defs, frozen_def, task, ema_decay, config.seed),
                    donate_argnums=0, out_shardings=(replicated, replicated))
  eval_fn = jit_apply(setup.eval_def)
  multiple = model_card(config.model.name, config.model.kwargs.to_dict()).size_multiple

  def validate(state, step) -> ValidationResult | None:
    """Validation on process 0 (the others return None), from its copy of the weights."""
    if jax.process_index() > 0:
      return None
    model_state = _local(_eval_state(state, ema_decay))
    bound = task.bind(state=_local(state.get("task")))
    result = bound.validate(lambda *inputs: eval_fn(model_state, *inputs), val_images, config,
                            multiple)
    writer.write_scalars(step, {f"val_{k}": v for k, v in result.metrics.items()})
    return result

  from clu import metric_writers, periodic_actions  # imports TensorFlow (~6 s): after the checks

  writer = metric_writers.create_default_writer(str(workdir),
                                                just_logging=jax.process_index() > 0)
  progress = periodic_actions.ReportProgress(num_train_steps=total_steps, writer=writer,
                                             every_steps=config.train.log_every)
  what = (f"random patches of {len(train_data):,} images (streamed)" if stream
          else f"{len(train_data):,} patches")
  say(f"Training {config.model.name} ({count_params(model):,} parameters) on {what} "
      f"({steps_per_epoch} steps/epoch), {total_steps:,} steps, batch {batch_size} over "
      f"{jax.device_count()} device(s).")
  batch_sharding = NamedSharding(mesh, P("data"))
  iterator = (on_devices(stream, batch_sharding) if stream
              else Prefetcher(batches(start_step), batch_sharding))
  started, last_saved, losses = time.time(), start_step, []
  first_nonfinite = jnp.int32(-1)
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
        rate = (done - start_step) / (time.time() - started)
        say(f"step {done}/{total_steps}  loss {loss:.4f}{extra}  {rate:.1f} steps/s  "
            f"ETA {_format_eta((total_steps - done) / rate)}")
      if evaluate:
        result = validate(state, done)
        if result is not None:
          say(f"step {done}: validation {result.headline}")
      if save:
        checkpoints.save(done, _to_pure(state), stream)
        last_saved = done
  finally:
    iterator.close()
    if stream is not None:
      stream.close()
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
  say(final.final_line(len(val_images)))
  return {"step": total_steps, "losses": losses, **final.metrics, **final.extras,
          "setting": final.setting, "summary": final.summary}


def say(line: str) -> None:
  """Prints a progress line on process 0 only."""
  if jax.process_index() == 0:
    print(line, flush=True)


def _streaming(config: ml_collections.ConfigDict) -> bool:
  """Whether data.pipeline streams ("stream") or holds the fixed patch grid ("fixed")."""
  return config.data.get("pipeline", "fixed") == "stream"


def _load_data(config: ml_collections.ConfigDict):
  """(training data, validation images [(name, uint8 (H, W, C))]). The training data is the
  fixed pipeline's patches, uint8 (N, P, P, C), or the stream's random-access images."""
  channels = config.data.channels
  data_dir = config.data.tfds_data_dir or None
  val_images = load_source(config.data.val_source, "val", channels, data_dir)
  if config.eval.max_val_images > 0:
    val_images = val_images[:config.eval.max_val_images]
  if _streaming(config):
    return streaming.open_source(config.data.source, "train", channels, data_dir,
                                 config.data.max_train_images,
                                 min_side=config.data.patch_size), val_images
  train_images = load_source(config.data.source, "train", channels, data_dir)
  if config.data.max_train_images > 0:
    train_images = train_images[:config.data.max_train_images]
  patches = build_patches(train_images, config.data.patch_size, config.data.stride,
                          tuple(config.data.scales), config.data.aug_copies, config.seed)
  return patches, val_images


def _stream(config: ml_collections.ConfigDict, source) -> grain.DatasetIterator:
  """This process's stream of training batches (`streaming.patch_stream`, data.stream)."""
  options = config.data.stream
  return streaming.patch_stream(
      source, batch_size=config.train.batch_size, patch_size=config.data.patch_size,
      seed=config.seed, scales=tuple(config.data.scales), flips=options.flips,
      patches_per_image=options.patches_per_image, threads=options.threads,
      buffer=options.buffer, workers=options.workers, process_index=jax.process_index(),
      process_count=jax.process_count())


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
  trained = nnx.merge(defs["model"][0], _local(_eval_state(state, ema_decay)))
  save_weights(workdir / "weights.msgpack", trained, config.model.name,
               config.model.kwargs.to_dict(),
               {"task": config.task.kind, "eval": config.eval.to_dict()})
  for name, critic in critic_configs(config).items():
    network = nnx.merge(defs[name][0], _local(state["critics"][name]["model"]))
    save_weights(workdir / f"{name}.msgpack", network, critic.model.name,
                 critic.model.get("kwargs", {}).to_dict())


"""Everything a training run is built from, given its config: the task, the model and the
networks trained beside it, the optimizer, the initial state, the jitted step, the training data
and the validation. `train/loop.py` runs what this builds; tests and benchmarks build steps here.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable

import grain
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from sfm_jax import pretrained
from sfm_jax.data import streaming
from sfm_jax.data.images import load_source
from sfm_jax.data.patches import build_patches
from sfm_jax.data.pipeline import PatchBatches, Prefetcher, on_devices
from sfm_jax.evaluation import check_image_sizes, make_evaluator
from sfm_jax.models import PLAIN, Compute, ModelCard, get_model, model_card
from sfm_jax.results import ValidationResult
from sfm_jax.tasks import task_class as find_task_class
from sfm_jax.tasks.base import Task, config_fields
from sfm_jax.weights import load_state_into, load_weights


def use_cpu_kernels(config: ml_collections.ConfigDict) -> bool:
  """Whether training builds its networks with the CPU kernels (`models.CPU_KERNELS`):
  train.cpu_kernels "auto" (on when JAX runs on the CPU), "on" or "off"."""
  setting = config.train.get("cpu_kernels", "auto")
  if setting not in ("auto", "on", "off"):
    raise ValueError(f"train.cpu_kernels={setting!r}; use 'auto', 'on' or 'off'.")
  return setting == "on" or (setting == "auto" and jax.default_backend() == "cpu")


def build_model(config: ml_collections.ConfigDict, compute: Compute = PLAIN) -> nnx.Module:
  """The config's model computing as `compute` says (plain Flax in float32 by default),
  initialised from `model.init_weights` (a weights file or a pretrained name such as
  sfm:dncnn_b) when given (fine-tuning)."""
  model = get_model(config.model.name, seed=config.seed, compute=compute,
                    **config.model.kwargs.to_dict())
  if config.model.get("init_weights"):
    source, name, _ = load_weights(pretrained.resolve(config.model.init_weights))
    if name != config.model.name:
      raise ValueError(f"{config.model.init_weights} holds a {name!r} model but the config "
                       f"trains {config.model.name!r}; set model.name={name!r}.")
    left = load_state_into(model, nnx.to_pure_dict(nnx.state(source)),
                           config.model.init_weights,
                           strict=not config.model.get("init_weights_matching", False))
    if left:
      print(f"Initialised from {config.model.init_weights} except {len(left)} entries whose "
            f"shapes differ, left at their initialisation: {', '.join(left[:6])}"
            + (" ..." if len(left) > 6 else ""), flush=True)
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



def eval_state(state: dict, ema_decay: float):
  """The model state to evaluate: the EMA weights in place of the parameters if kept."""
  if ema_decay <= 0:
    return state["model"]
  model_state = jax.tree.map(lambda x: x, state["model"])
  nnx.replace_by_pure_dict(model_state, nnx.to_pure_dict(state["ema"]))
  return model_state


def to_pure(tree):
  """The training state as nested dicts of arrays (what orbax saves)."""
  if isinstance(tree, nnx.State):
    return nnx.to_pure_dict(tree)
  if isinstance(tree, dict):
    return {k: to_pure(v) for k, v in tree.items()}
  return {} if tree is None else tree


def from_pure(template, pure):
  """`template` (a training state) with the values of `pure` (from `to_pure`)."""
  if isinstance(template, nnx.State):
    value = jax.tree.map(lambda x: x, template)
    nnx.replace_by_pure_dict(value, pure)
    return value
  if isinstance(template, dict):
    return {k: from_pure(v, pure[k]) for k, v in template.items()}
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
  task state. Trained networks are built to compute in train.compute_dtype (with the CPU
  kernels if `cpu_kernels`), validation in eval.compute_dtype; the state is float32 either
  way."""
  compute = Compute.from_settings(config.train.get("compute_dtype", "float32"), cpu_kernels)
  model = build_model(config, compute)
  model.train()
  eval_compute = Compute.from_settings(config.eval.get("compute_dtype", "float32"))
  eval_model = nnx.eval_shape(lambda: get_model(config.model.name, compute=eval_compute,
                                                **config.model.kwargs.to_dict()))
  eval_model.eval()
  eval_def, _ = nnx.split(eval_model)
  optimizer, schedule = _with_optimizer(model, config.optim, steps_per_epoch)
  networks, optimizers = {"model": model}, {"model": optimizer}
  for name, critic in critic_configs(config).items():
    networks[name] = get_model(critic.model.name, seed=config.seed + 1, compute=compute,
                               **critic.model.get("kwargs", {}))
    networks[name].train()
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


def training_step(config: ml_collections.ConfigDict, task: Task, initial: InitialState,
                  val_images: list | None = None) -> tuple[Callable, dict]:
  """(the pure step of `config` (`make_train_step`), its frozen inputs {"networks": the task's
  frozen networks' weights, "constants": the task's constants of `val_images`, {} without}):
  what train.py jits and runs, and what tests and benchmarks trace or time."""
  frozen_def, frozen_networks = nnx.split(task.frozen_networks())
  constants = {} if val_images is None else task.constants_for(val_images, config)
  step = make_train_step(initial.defs, frozen_def, task, config.train.ema_decay, config.seed)
  return step, {"networks": frozen_networks, "constants": constants}


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





class TrainingData:
  """The training and validation data of a config. It alone decides between the two pipelines
  (data.pipeline): "fixed", SFM's patch grid cut once and held in memory (uint8 (N, P, P, C)),
  or "stream", random crops of images read as needed (`data.streaming`; docs/recipes.md, "Data").

  val_images: [(name, uint8 (H, W, C))]. stream: the grain iterator whose position is
  checkpointed (None for the fixed grid). steps_per_epoch: batches per pass over the data.
  """

  def __init__(self, config: ml_collections.ConfigDict):
    self.streamed = config.data.get("pipeline", "fixed") == "stream"
    self.source, self.val_images = _load_data(config, self.streamed)
    batch_size = config.train.batch_size
    if self.streamed:
      self.stream = _stream(config, self.source)
      self.steps_per_epoch = streaming.steps_per_epoch(self.source, batch_size,
                                                       config.data.stream.patches_per_image)
    else:
      self.stream = None
      self.batches = PatchBatches(self.source, batch_size, config.seed)
      self.steps_per_epoch = self.batches.steps_per_epoch

  def describe(self) -> str:
    return (f"random patches of {len(self.source):,} images (streamed)" if self.streamed
            else f"{len(self.source):,} patches")

  def batches_on_devices(self, start_step: int, sharding):
    """An iterator of uint8 batches placed with `sharding`, from `start_step` on (the stream
    continues from its restored position)."""
    if self.streamed:
      return on_devices(self.stream, sharding)
    return Prefetcher(self.batches(start_step), sharding)

  def close(self) -> None:
    if self.stream is not None:
      self.stream.close()


def _load_data(config: ml_collections.ConfigDict, streamed: bool):
  """(training data, validation images). The training data is the fixed pipeline's patches,
  uint8 (N, P, P, C), or the stream's random-access images."""
  channels = config.data.channels
  data_dir = config.data.tfds_data_dir or None
  val_images = load_source(config.data.val_source, "val", channels, data_dir)
  if config.eval.max_val_images > 0:
    val_images = val_images[:config.eval.max_val_images]
  if streamed:
    return streaming.open_source(config.data.source, "train", channels, data_dir,
                                 config.data.max_train_images,
                                 min_side=config.data.patch_size,
                                 skip_small=config.data.get("skip_small_images", False)
                                 ), val_images
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


# A validation: (the jitted model f(*inputs), validation images, the task state) -> result.
Validator = Callable[[Callable, list, dict | None], ValidationResult]


def make_validator(task: Task, config: ml_collections.ConfigDict,
                   images: list) -> Validator:
  """How the trained model is validated: the evaluator of the task's protocol on the task's
  predict function and settings, or the task's own `validate` (protocol ""). DataError, before
  any training, when an image of `images` (the validation set) is too small to score."""
  if not task.protocol:
    return lambda apply, images, state: task.bind(state=state).validate(apply, images, config)
  evaluator = make_evaluator(task.protocol, task.validation_settings(config), main_card(config))
  check_image_sizes(images, evaluator.min_side, f"data.val_source={config.data.val_source}")
  return lambda apply, images, state: evaluator.validate(task.predictor(apply), images)


def main_card(config: ml_collections.ConfigDict) -> ModelCard:
  """The card of the config's model."""
  return model_card(config.model.name, config.model.kwargs.to_dict())

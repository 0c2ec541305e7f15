"""The contract between a task and the training loop.

A task says what is learned: how a batch of clean patches becomes a training batch on device,
what the model is asked, the loss, and how a trained model is validated. A task is a frozen
dataclass whose fields are the config's `task` fields (so `--config.task.x=…` reaches them);
`sfm_jax.tasks.TASKS` maps `config.task.kind` to the class (`tasks.task_class`).

Required (abstract): `synthesize` and `predict`; and `loss`, unless the task overrides `update`.

How the trained model is validated: `protocol` names the evaluator of `sfm_jax.evaluation` that
scores it ("denoise", "sr", "fca", "kernel"); `predictor(apply)` turns the jitted model into the
function that evaluator calls, and `validation_settings(config)` gives the evaluator its settings
(config.eval plus the task's own conditions: the validation σ, the blur, the scale). A task with
protocol "" validates itself (`validate`: NMD's held-out accuracies). Tasks never import
`sfm_jax.evaluation`; the training setup joins the two.

Optional hooks, each with a default that does nothing special:

- `frozen_networks()`: trained networks the task runs but does not train (IKC's SFTMD, NatSR's
  NMD, ESRGAN's VGG19). The loop passes their weights to the jitted step as an argument.
- `constants_for(val_images, config)`: fixed arrays the step needs (NMD's held-out patches).
- `updates_per_batch` / `next_batch`: several updates on one batch (IKC's seven corrections).
- `update(networks, optimizers, batch)`: the optimiser updates of one step. Networks trained side
  by side with the main model (discriminators, comparators: `config.critics`) arrive here by
  name next to "model"; adversarial tasks update the critic, then the generator; FCA updates all
  three on one cooperative loss.
- `initial_state()` / `advance(state, networks, step)`: task state that evolves with training
  and is checkpointed with it (NMD's σ / α curriculum).

Inside the step the loop calls `bind`, which returns a copy whose `networks` (the frozen
networks), `constants` and `state` are set; outside it they are empty.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from sfm_jax.results import ValidationResult

# A jitted model in eval mode: f(*inputs) -> outputs (for a denoiser f(noisy, noise_level)).
Apply = Callable[..., jax.Array]


@dataclasses.dataclass(frozen=True)
class Task(abc.ABC):
  """Base of every task; subclasses are frozen dataclasses with a `kind` field first."""

  # Set by `bind` inside the jitted step; not config fields.
  networks: Mapping[str, nnx.Module] = dataclasses.field(
      default_factory=dict, init=False, repr=False, compare=False)
  constants: Mapping[str, Any] = dataclasses.field(
      default_factory=dict, init=False, repr=False, compare=False)
  state: Mapping[str, jax.Array] = dataclasses.field(
      default_factory=dict, init=False, repr=False, compare=False)

  updates_per_batch = 1
  protocol: ClassVar[str] = ""  # the evaluator that validates the trained model ("": validate)

  @abc.abstractmethod
  def synthesize(self, key: jax.Array, clean: jax.Array, step: jax.Array) -> dict:
    """Clean patches (B, P, P, C) in [0, 1] -> the training batch, on device from `key`."""

  @abc.abstractmethod
  def predict(self, model: nnx.Module, batch: dict) -> jax.Array:
    """The model's output on `batch`."""

  def loss(self, output: jax.Array, batch: dict) -> jax.Array:
    """The scalar training loss of `output` on `batch`: what the default `update` minimises
    (a task that overrides `update`, like FCA's, may have none)."""
    raise NotImplementedError(f"{type(self).__name__} defines no loss; override `loss` or "
                              "`update`.")

  def predictor(self, apply: Apply) -> Callable:
    """The function the evaluator of `protocol` calls, from the jitted model `apply` (default:
    `apply` itself; SR tasks upscale a pre-upscaled input, IKC stages chain their networks)."""
    return apply

  def validation_settings(self, config) -> ml_collections.ConfigDict:
    """The evaluator's settings: a copy of config.eval with the task's conditions (default:
    config.eval as it is)."""
    return ml_collections.ConfigDict(config.eval.to_dict())

  def validate(self, apply: Apply, images: list, config) -> ValidationResult:
    """Scores `apply` on validation `images` ((name, uint8 (H, W, C)) pairs): only for tasks
    with protocol "" (the others are scored by their protocol's evaluator)."""
    raise NotImplementedError(f"{type(self).__name__} has protocol {self.protocol!r}; its "
                              "evaluator validates it.")

  def frozen_networks(self) -> dict[str, nnx.Module]:
    """Trained networks the task runs but does not train, by name."""
    return {}

  def constants_for(self, val_images: list, config) -> dict:
    """Fixed arrays the jitted step reads as self.constants (not checkpointed)."""
    return {}

  def initial_state(self) -> dict:
    """Task state (arrays) carried and checkpointed with the training state."""
    return {}

  def bind(self, networks: Mapping[str, nnx.Module] | None = None,
           constants: Mapping[str, Any] | None = None,
           state: Mapping[str, jax.Array] | None = None) -> Task:
    """A copy of this task with the frozen `networks`, `constants` and task `state` set."""
    bound = copy.copy(self)
    object.__setattr__(bound, "networks", networks or {})
    object.__setattr__(bound, "constants", constants or {})
    object.__setattr__(bound, "state", state or {})
    return bound

  def next_batch(self, batch: dict, output: jax.Array) -> dict:
    """The batch of the next update on the same data (when updates_per_batch > 1)."""
    return batch

  def update(self, networks: dict[str, nnx.Module], optimizers: dict[str, nnx.Optimizer],
             batch: dict) -> dict[str, jax.Array]:
    """The optimiser updates of one step on `batch`, in place; returns metrics with "loss".

    Default: `updates_per_batch` updates of networks["model"] on `loss(predict(...))`.
    """
    model, optimizer = networks["model"], optimizers["model"]

    def loss_of(model, batch):
      output = self.predict(model, batch)
      return self.loss(output, batch), output

    losses = []
    for _ in range(self.updates_per_batch):
      (loss, output), grads = nnx.value_and_grad(loss_of, has_aux=True)(model, batch)
      optimizer.update(model, grads)
      batch = self.next_batch(batch, output)
      losses.append(loss)
    return {"loss": jnp.mean(jnp.stack(losses))}

  def advance(self, state: dict, networks: dict[str, nnx.Module], step: jax.Array):
    """(new task state, metrics) after the updates of `step` (default: unchanged, none)."""
    return state, {}


def config_fields(task_class: type[Task]) -> dict[str, dataclasses.Field]:
  """The dataclass fields of `task_class` that a config's `task` section sets."""
  return {f.name: f for f in dataclasses.fields(task_class) if f.init}

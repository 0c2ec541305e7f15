"""What the training loop asks of every task beyond synthesize / predict / loss / validate.

Most tasks train one network with one update per batch and need nothing else. The hooks, each
with a default that does nothing special:

- `frozen_networks()`: trained networks the task runs but does not train (IKC's SFTMD, NatSR's
  NMD, ESRGAN's VGG19). The loop passes their weights to the jitted step as an argument.
- `constants(val_images, config)`: fixed arrays the step needs (NMD's held-out curriculum patches).
- `updates_per_batch` / `next_batch`: several updates on one batch (IKC's seven corrections).
- `update(networks, optimizers, batch)`: the optimiser updates of one step. Networks trained side
  by side with the main model (discriminators, comparators: `config.critics`) arrive here by
  name next to "model"; adversarial tasks update the critic, then the generator; FCA updates all
  three on one cooperative loss. One loop runs them all.
- `initial_state()` / `advance(state, networks, step)`: task state that evolves with training
  and is checkpointed with it (NMD's σ / α curriculum).

Inside the step the loop calls `bind`, so these methods see `self.networks` (the frozen
networks), `self.constants` and `self.state`.
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
from flax import nnx


class Task:
  updates_per_batch = 1

  def frozen_networks(self) -> dict[str, nnx.Module]:
    """Trained networks the task runs but does not train, by name."""
    return {}

  def constants(self, val_images: list, config) -> dict:
    """Fixed arrays the jitted step reads as self.constants (not checkpointed)."""
    return {}

  def initial_state(self) -> dict:
    """Task state (arrays) carried and checkpointed with the training state."""
    return {}

  def bind(self, networks: dict[str, nnx.Module], constants: dict | None = None,
           state: dict | None = None) -> Task:
    """This task with the frozen `networks`, `constants` and task `state` attached."""
    bound = copy.copy(self)
    object.__setattr__(bound, "networks", networks)
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

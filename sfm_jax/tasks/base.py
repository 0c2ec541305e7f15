"""What the training loop asks of every task beyond synthesize / predict / loss / validate.

Most tasks train one network with one update per batch and need nothing else. A task that uses
frozen networks (IKC's Corrector runs a trained SFTMD and Predictor) returns them from
`frozen_networks()`; the loop passes their weights to the jitted step as an argument and hands
them back through `bind`. A task that makes several updates on one batch (IKC's seven correction
steps) sets `updates_per_batch` and carries its state from one update to the next in
`next_batch`.
"""

from __future__ import annotations

import copy

import jax
from flax import nnx


class Task:
  updates_per_batch = 1

  def frozen_networks(self) -> dict[str, nnx.Module]:
    """Trained networks the task runs but does not train, by name."""
    return {}

  def bind(self, networks: dict[str, nnx.Module]) -> Task:
    """This task with `networks` (the merged `frozen_networks`) available as self.networks."""
    bound = copy.copy(self)
    object.__setattr__(bound, "networks", networks)
    return bound

  def next_batch(self, batch: dict, output: jax.Array) -> dict:
    """The batch of the next update on the same data (when updates_per_batch > 1)."""
    return batch

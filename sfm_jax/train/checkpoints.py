"""Orbax checkpoints of the whole training state: periodic, atomic, keep-N, automatic resume."""

from __future__ import annotations

import pathlib

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """Saves and restores {"model", "optimizer", "ema"} pytrees under WORKDIR/checkpoints.

  Data order and noise are functions of (seed, step), so a restored step continues exactly.
  """

  def __init__(self, workdir: str | pathlib.Path, keep: int = 3):
    directory = pathlib.Path(workdir).absolute() / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    self.manager = ocp.CheckpointManager(directory, options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, tree) -> None:
    self.manager.save(step, args=ocp.args.StandardSave(tree), force=True)

  def restore(self, step: int, like):
    """Restores into the structure, dtypes and shardings of `like`."""
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return self.manager.restore(step, args=ocp.args.StandardRestore(target))

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()

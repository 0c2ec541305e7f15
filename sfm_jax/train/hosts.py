"""Agreement between the processes of a `--distributed` run."""

from __future__ import annotations

import jax
import numpy as np


def max_over_processes(value: int) -> int:
  """The largest of `value` over all processes; `value` itself with one process. Every
  process must call this at the same point (it is a collective)."""
  if jax.process_count() == 1:
    return value
  from jax.experimental import multihost_utils

  return int(np.asarray(multihost_utils.process_allgather(np.int32(value))).max())

"""Deterministic, resumable batches of clean patches, prefetched onto the device mesh."""

from __future__ import annotations

import queue
import threading
import typing
from collections.abc import Iterator

import jax
import numpy as np

from sfm_jax.errors import DataError


class PatchBatches:
  """Shuffled batches whose content depends only on (seed, step), so a resumed run reads exactly
  what an uninterrupted one would. Epoch e uses permutation `default_rng((seed, e))`; the
  incomplete last batch of an epoch is dropped (static shapes under jit).

  Args:
    patches: uint8 (N, H, W, C).
    batch_size: global batch size (split over processes and devices).
    seed: shuffling seed.
  """

  def __init__(self, patches: np.ndarray, batch_size: int, seed: int = 0):
    if len(patches) < batch_size:
      raise DataError(f"only {len(patches)} training patches for a batch of {batch_size}; add "
                      "images, lower data.stride, or lower train.batch_size.")
    self.patches, self.batch_size, self.seed = patches, batch_size, seed
    self.steps_per_epoch = len(patches) // batch_size

  def indices(self, step: int) -> np.ndarray:
    epoch, position = divmod(step, self.steps_per_epoch)
    order = np.random.default_rng((self.seed, epoch)).permutation(len(self.patches))
    return order[position * self.batch_size:(position + 1) * self.batch_size]

  def local_batch(self, step: int) -> np.ndarray:
    """This process's share of global batch `step`, uint8 (B / process_count, H, W, C)."""
    idx = self.indices(step)
    share = len(idx) // jax.process_count()
    return self.patches[idx[jax.process_index() * share:(jax.process_index() + 1) * share]]

  def __call__(self, start_step: int = 0) -> Iterator[np.ndarray]:
    step = start_step
    while True:
      yield self.local_batch(step)
      step += 1


def on_devices(batches: Iterator[np.ndarray], sharding: jax.sharding.Sharding
               ) -> Iterator[jax.Array]:
  """`batches` (this process's share of each global batch) as global arrays on `sharding`, each
  moved when asked for, so the source's own state stays that of the batches handed out."""
  for batch in batches:
    yield jax.make_array_from_process_local_data(sharding, batch)


class Prefetcher:
  """Moves host batches to the devices of `sharding` in a background thread, `size` ahead.

  Use as an iterator; an error in the thread is raised by the `next()` that would have received
  its batch. `close()` (or the context manager) stops and joins the thread.
  """

  def __init__(self, batches: Iterator[np.ndarray], sharding: jax.sharding.Sharding,
               size: int = 2):
    self._slots: queue.Queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._produce, args=(batches, sharding), daemon=True)
    self._thread.start()

  def _produce(self, batches, sharding):
    try:
      for batch in batches:
        if not self._put(jax.make_array_from_process_local_data(sharding, batch)):
          return
      self._put(_Failure(StopIteration()))
    except BaseException as error:  # handed to the consumer, which raises it
      self._put(_Failure(error))

  def _put(self, item) -> bool:
    """Waits for a free slot; False once close() was called."""
    while not self._stop.is_set():
      try:
        self._slots.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def __iter__(self):
    return self

  def __next__(self) -> jax.Array:
    item = self._slots.get()
    if isinstance(item, _Failure):
      raise item.error
    return item

  def close(self):
    self._stop.set()
    self._thread.join()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class _Failure(typing.NamedTuple):
  error: BaseException

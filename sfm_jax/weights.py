"""Single-file model weights: the architecture (registry name + constructor arguments), the
model's card (`models.ModelCard`: role, channels, scale, protocol, ...) and the model state
(parameters and BatchNorm statistics) in one msgpack file.

`train.py` writes `WORKDIR/weights.msgpack` at the end of training, `python -m sfm_jax.convert`
writes the same format from PyTorch checkpoints, and `eval.py --weights FILE` reads it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib

import jax
import numpy as np
from flax import nnx, serialization

from sfm_jax.models import PLAIN, Compute, ModelCard, get_model, model_card

FORMAT = "sfm-jax-weights/1"


def save_weights(path: str | pathlib.Path, model: nnx.Module, name: str, kwargs: dict,
                 metadata: dict | None = None):
  """Writes `model`'s state, how to rebuild it and its card to `path` (atomically). `metadata`
  (plain values) travels with it, e.g. {"task": config.task.kind, "eval": config.eval}:
  `eval.py --weights` reads its evaluation settings from there."""
  state = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model)))
  card = model_card(name, dict(kwargs))
  payload = {"format": FORMAT,
             "model": {"name": name, "kwargs": dict(kwargs), "card": card.to_dict()},
             "metadata": _plain(metadata or {}), "state": state}
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  write_atomically(path, serialization.msgpack_serialize(payload))


def write_atomically(path: pathlib.Path, data: bytes) -> None:
  """Writes `data` to a temporary file beside `path`, then renames it over `path`: a reader
  sees the old file or the new one, never a part of one. If the write fails (a full disk) the
  temporary file is removed, the old file is left as it was, and OSError names both."""
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  try:
    with open(tmp, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    tmp.replace(path)
  except BaseException as error:  # also KeyboardInterrupt: never leave the part file
    tmp.unlink(missing_ok=True)
    if isinstance(error, OSError):
      kept = "the previous file is intact" if path.exists() else "nothing was written"
      raise OSError(error.errno, f"cannot write {path} ({error.strerror or error}); {kept}. "
                    "Free some disk space (or choose another folder) and run again.") from None
    raise


def load_weights(path: str | pathlib.Path) -> tuple[nnx.Module, str, dict]:
  """Rebuilds the model stored in `path`; returns (model, name, kwargs)."""
  model, card, stored = load_model(path)
  return model, card.name, stored.kwargs


@dataclasses.dataclass(frozen=True)
class StoredModel:
  """What a weights file says besides the state: the registry name, the constructor arguments,
  the card and the metadata ({} for files written without any)."""
  name: str
  kwargs: dict
  card: ModelCard
  metadata: dict


def load_model(path: str | pathlib.Path, compute: Compute = PLAIN
               ) -> tuple[nnx.Module, ModelCard, StoredModel]:
  """(the model stored in `path` with its weights, computing as `compute` says; its card; what
  the file says). A file written before cards were saved gets the card of its name and
  arguments."""
  payload = _read(path)
  stored = _stored(payload)
  model = get_model(stored.name, module=stored.card.module, compute=compute, **stored.kwargs)
  load_state_into(model, payload["state"], str(path))
  return model, stored.card, stored


def read_stored(path: str | pathlib.Path) -> StoredModel:
  """What the weights file `path` says about its model, without building it."""
  return _stored(_read(path))


def _stored(payload: dict) -> StoredModel:
  model = payload["model"]
  name, kwargs = model["name"], dict(model["kwargs"])
  saved = model.get("card")
  card = (ModelCard.from_dict(saved) if saved
          else model_card(name, kwargs))
  return StoredModel(name, kwargs, card, dict(payload.get("metadata", {})))


def _read(path: str | pathlib.Path) -> dict:
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"weights file {path} not found; pass a file written by train.py "
                            "(WORKDIR/weights.msgpack) or by python -m sfm_jax.convert.")
  data = path.read_bytes()
  try:
    payload = serialization.msgpack_restore(data)
  except Exception:
    payload = None
  if isinstance(payload, dict) and {"model", "state"} <= set(payload):
    return payload
  if FORMAT.encode() in data[:200]:  # our header, then the file ends or breaks
    raise ValueError(f"{path} is an sfm-jax weights file cut short or damaged "
                     f"({len(data):,} bytes): copy it again, or write it again (train.py, "
                     "sfm-convert, sfm-pretrained --fetch).")
  raise ValueError(f"{path} is not an sfm-jax weights file (msgpack); convert PyTorch .pth "
                   "files with python -m sfm_jax.convert first.")


def load_state_into(model: nnx.Module, pure_state: dict, origin: str,
                    strict: bool = True) -> list[str]:
  """Copies a pure-dict state into `model`, strictly: missing, unexpected or mis-shaped entries
  are reported by name. Not `strict`: only the entries whose name and shape match are copied
  (fine-tuning ×3 from ×2: the upsampler differs); returns the model's entries left as they
  were, as "a/b/c" paths."""
  state = nnx.state(model)
  expected = dict(_flatten(nnx.to_pure_dict(state)))
  given = dict(_flatten(pure_state))
  left = []
  if not strict:
    fits = {k for k, v in given.items()
            if k in expected and np.shape(v) == np.shape(expected[k])}
    if not fits:
      raise ValueError(f"{origin} shares no weights with the model; check model.kwargs.")
    pure_state = _with_entries(nnx.to_pure_dict(state), given, fits)
    given = dict(_flatten(pure_state))
    left = sorted(set(expected) - fits)
  missing = sorted(set(expected) - set(given))
  unexpected = sorted(set(given) - set(expected))
  shapes = sorted(k for k in set(expected) & set(given)
                  if np.shape(expected[k]) != np.shape(given[k]))
  if missing or unexpected or shapes:
    details = "; ".join(part for part in (
        f"missing {missing[:5]}" if missing else "",
        f"unexpected {unexpected[:5]}" if unexpected else "",
        f"shape mismatch {[(k, np.shape(given[k]), np.shape(expected[k])) for k in shapes[:5]]}"
        if shapes else "") if part)
    raise ValueError(f"{origin} does not fit the model: {details}.")
  nnx.replace_by_pure_dict(state, pure_state)
  nnx.update(model, state)
  return left


def _plain(value):
  """`value` with tuples as lists and dicts as plain dicts (what msgpack stores)."""
  if isinstance(value, dict):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, list | tuple):
    return [_plain(v) for v in value]
  return value


def _flatten(tree, prefix=()):
  if isinstance(tree, dict):
    for key, value in tree.items():
      yield from _flatten(value, (*prefix, str(key)))
  else:
    yield "/".join(prefix), tree


def _with_entries(tree, given: dict, paths: set[str], prefix=()):
  """`tree` (a pure dict) with the leaves at `paths` ("a/b" strings) taken from `given`."""
  if isinstance(tree, dict):
    return {key: _with_entries(value, given, paths, (*prefix, str(key)))
            for key, value in tree.items()}
  path = "/".join(prefix)
  return given[path] if path in paths else tree


@functools.cache
def load_frozen(path: str) -> nnx.Module:
  """A weights file's model in eval mode, for a task's frozen networks (cached: one copy per
  file per process)."""
  model, _, _ = load_weights(path)
  model.eval()
  return model

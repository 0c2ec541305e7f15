"""Per-image ops on batches sharded under an *explicit* mesh (`jax.set_mesh` with
`AxisType.Explicit`): the op runs on every device's share of the batch (`jax.shard_map`), so
reshapes and gathers that mix images never see a sharded batch axis. Under the default (auto)
axes, inside `jax.shard_map`, and for unsharded arrays, the op runs as it is."""

from __future__ import annotations

from collections.abc import Callable

import jax
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P


def explicit_batch_axes(x: jax.Array):
  """The mesh axes over which the leading (batch) axis of `x` is explicitly sharded, or None."""
  sharding = getattr(jax.typeof(x), "sharding", None)
  spec = getattr(sharding, "spec", None)
  if not spec or spec[0] is None:
    return None
  axes = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
  types = dict(zip(sharding.mesh.axis_names, sharding.mesh.axis_types, strict=True))
  if not all(types.get(axis) == AxisType.Explicit for axis in axes):
    return None  # auto axes (XLA decides) or manual ones (inside shard_map: already local)
  return spec[0]


def per_batch_shard(fn: Callable[..., jax.Array], *arrays: jax.Array) -> jax.Array:
  """fn(*arrays) for arrays that all have the batch as their leading axis, each device applying
  `fn` to its share when that axis of any of them is explicitly sharded (the others are
  resharded to match). `fn` must treat images independently."""
  axes = next((a for a in map(explicit_batch_axes, arrays) if a is not None), None)
  if axes is None:
    return fn(*arrays)
  spec = P(axes)
  arrays = tuple(jax.sharding.reshard(a, spec) for a in arrays)
  return jax.shard_map(fn, in_specs=(spec,) * len(arrays), out_specs=spec)(*arrays)

"""Whole-image inference: padding to the model's size multiple, tiling for large images, and
the ×8 dihedral self-ensemble. Only one tile at a time is on the device when tiling."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sfm_jax.data.patches import dihedral


def jit_apply(graphdef) -> Callable:
  """A jitted f(state, *inputs) = nnx.merge(graphdef, state)(*inputs); compiled once per graph
  and input shapes, so new weights (a later checkpoint, EMA) reuse the compilation."""
  return jax.jit(lambda state, *inputs: nnx.merge(graphdef, state)(*inputs))


def make_apply(model: nnx.Module) -> Callable:
  """`model` in eval mode as a jitted f(*inputs) (for a denoiser: f(noisy, noise_level))."""
  model.eval()
  graphdef, state = nnx.split(model)
  apply = jit_apply(graphdef)
  return lambda *inputs: apply(state, *inputs)



def make_upscaler(model: nnx.Module, *, tile: int = 0, tile_overlap: int = 16,
                  self_ensemble: bool = False) -> Callable[[np.ndarray], np.ndarray]:
  """An SR model, jitted in eval mode, as f(lr (h, w, C) in [0, 1]) -> (s·h, s·w, C) float32.

  tile > 0 processes images larger than `tile` LR pixels tile by tile with `tile_overlap` LR
  pixels of context (exact once that covers the receptive field); self_ensemble averages the ×8
  dihedral outputs.
  """
  fn = _ensembled(make_apply(model), self_ensemble)
  return lambda lr: _whole_or_tiled(fn, np.asarray(lr)[None], tile, tile_overlap)[0]


def _pad_to_multiple(x: jax.Array, multiple: int) -> tuple[jax.Array, tuple[int, int]]:
  h, w = x.shape[1:3]
  ph, pw = -h % multiple, -w % multiple
  if ph or pw:
    x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
  return x, (h, w)


def _round_up(value: int, multiple: int) -> int:
  return -(-value // multiple) * multiple


def run_tiled(fn, x: np.ndarray, tile: int, overlap: int, multiple: int = 1,
              progress: Callable[[int], None] | None = None) -> np.ndarray:
  """Applies fn to x (N, H, W, C) tile by tile: each tile×tile core is processed with `overlap`
  pixels of context on every side (fewer at the image border) and only the core is kept, so the
  result equals whole-image inference when overlap ≥ the model's receptive-field radius. Tile
  and overlap are rounded up to `multiple` so that every tile starts on the model's grid (its
  pooling or pixel-unshuffle cells), as the whole image does. fn maps (N, h, w, C) to
  (N, s·h, s·w, C'): s = 1 for denoisers, the scale for SR. `progress(n)` is told of each
  finished tile."""
  tile, overlap = _round_up(tile, multiple), _round_up(overlap, multiple)
  n, h, w, _ = x.shape
  out = None
  for top in range(0, h, tile):
    for left in range(0, w, tile):
      y0, x0 = max(top - overlap, 0), max(left - overlap, 0)
      y1, x1 = min(top + tile + overlap, h), min(left + tile + overlap, w)
      result = np.asarray(fn(jnp.asarray(x[:, y0:y1, x0:x1])))
      scale = result.shape[1] // (y1 - y0)
      if out is None:
        out = np.empty((n, h * scale, w * scale, result.shape[-1]), np.float32)
      dy, dx = (top - y0) * scale, (left - x0) * scale
      core = result[:, dy:dy + tile * scale, dx:dx + tile * scale]
      out[:, top * scale:top * scale + core.shape[1],
          left * scale:left * scale + core.shape[2]] = core
      if progress:
        progress(1)
  return out


def tile_count(shape: tuple[int, int], tile: int, multiple: int = 1) -> int:
  """How many tiles run_tiled cuts an (H, W) image into."""
  tile = _round_up(tile, multiple)
  return -(-shape[0] // tile) * -(-shape[1] // tile)


# The most temporary memory one model call may use. XLA:CPU's YNNPACK convolutions abort the
# process (std::bad_alloc) on calls somewhat above 4 GiB of activations (DnCNN-B on a 12 MP
# image needs 6 GiB), and calls above ~2 GiB are no faster per pixel.
MAX_CALL_BYTES = 2 << 30


def activation_bytes_per_pixel(model: nnx.Module, channels: int, takes_level: bool,
                               multiple: int = 1) -> float:
  """The temporary memory of one forward pass per input pixel, from XLA's memory analysis of
  a 64×64 compile (activations grow linearly with the pixels)."""
  side = _round_up(64, multiple)
  graphdef, state = nnx.split(model)
  inputs = [jax.ShapeDtypeStruct((1, side, side, channels), jnp.float32)]
  if takes_level:
    inputs.append(jax.ShapeDtypeStruct((1,), jnp.float32))
  compiled = jit_apply(graphdef).lower(state, *inputs).compile()
  stats = compiled.memory_analysis()
  if stats is None:  # a backend without the analysis: DnCNN-B's figure, times two
    return 1024.0
  return (stats.temp_size_in_bytes + stats.output_size_in_bytes) / side**2


def available_memory() -> int:
  """Bytes this process can still use: the accelerator's free memory, or on a CPU the
  smaller of the machine's MemAvailable and the cgroup's remaining limit."""
  device = jax.local_devices()[0]
  if device.platform != "cpu":
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
      return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
  limits = []
  try:
    with open("/proc/meminfo") as f:
      fields = dict(line.split(":", 1) for line in f)
    limits.append(int(fields["MemAvailable"].split()[0]) * 1024)
  except (OSError, KeyError, ValueError):
    limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
  try:
    cgroup = pathlib.Path("/sys/fs/cgroup")
    limit = (cgroup / "memory.max").read_text().strip()
    if limit != "max":
      limits.append(int(limit) - int((cgroup / "memory.current").read_text()))
  except (OSError, ValueError):
    pass
  return max(min(limits), 0)


def auto_tile(shape: tuple[int, int], bytes_per_pixel: float, overlap: int,
              multiple: int = 1, budget: float | None = None) -> int:
  """0 when the whole (H, W) image fits in one call, else the largest tile (a multiple of
  `multiple`) whose call, with `overlap` pixels of context on each side, stays within half the
  available memory (`budget`: given) and MAX_CALL_BYTES."""
  budget = min(0.5 * available_memory() if budget is None else budget, MAX_CALL_BYTES)
  if shape[0] * shape[1] * bytes_per_pixel <= budget:
    return 0
  side = int((budget / bytes_per_pixel) ** 0.5) - 2 * overlap
  side = side // multiple * multiple
  if side < max(multiple, 16):
    raise MemoryError(f"too little memory for even a small tile ({budget / 2**20:.0f} MiB "
                      "available): close other programs or give --tile.")
  return side


def tile_context(tile_overlap: int, card) -> int:
  """The context pixels of a tile: `tile_overlap`, or for -1 the receptive field on the
  model's card (`models.ModelCard`), with which tiles give the whole-image output."""
  return card.receptive_field if tile_overlap < 0 else tile_overlap


def restore_image(apply, image: np.ndarray, noise_level: float, **options) -> np.ndarray:
  """`restore_batch` on one (H, W, C) image in [0, 1] -> (s·H, s·W, C) float32."""
  return restore_batch(apply, np.asarray(image)[None], noise_level, **options)[0]


def restore_batch(apply, images: np.ndarray, noise_level: float, *, multiple: int = 1,
                  tile: int = 0, tile_overlap: int = 32, self_ensemble: bool = False,
                  progress: Callable[[int], None] | None = None) -> np.ndarray:
  """Runs a restoration model `apply(x (N, h, w, C), level (N,)) -> (N, s·h, s·w, C)` (a
  denoiser, s = 1, or a super-resolver, which ignores the level) on (N, H, W, C) images in
  [0, 1], in one call or in tiles of `tile` (0: whole) aligned to `multiple`, each tile of all
  N images at once; returns (N, s·H, s·W, C) float32 (not clipped)."""
  if tile and tile_overlap < 0:
    raise ValueError(f"tile_overlap={tile_overlap}: give the context pixels (>= 0), e.g. "
                     "tile_context(-1, card), the model's receptive field.")
  level = jnp.full((images.shape[0],), noise_level, jnp.float32)

  def single(x):  # (N, h, w, C) device array -> (N, s·h, s·w, C)
    padded, (h, w) = _pad_to_multiple(x, multiple)
    out = apply(padded, level)
    scale = out.shape[1] // padded.shape[1]
    return out[:, :h * scale, :w * scale]

  return _whole_or_tiled(_ensembled(single, self_ensemble), images, tile, tile_overlap, multiple,
                         progress)


def _whole_or_tiled(fn, images: np.ndarray, tile: int, overlap: int, multiple: int = 1,
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
  """fn on (N, H, W, C) images, tile by tile when they are larger than `tile` (0: never)."""
  x = np.asarray(images, np.float32)
  if tile and max(x.shape[1:3]) > tile:
    return run_tiled(fn, x, tile, overlap, multiple, progress)
  return np.asarray(fn(jnp.asarray(x)))


def _ensembled(fn, self_ensemble: bool):
  """fn itself, or the mean of fn over the 8 dihedral transforms of its input (each undone)."""
  if not self_ensemble:
    return fn
  return lambda x: jnp.mean(
      jnp.stack([_undo_dihedral(fn(dihedral(x, m, jnp)), m) for m in range(8)]), axis=0)


def _undo_dihedral(x: jax.Array, mode: int) -> jax.Array:
  """Inverse of `dihedral(x, mode)`: undo the flip, then rotate back."""
  if mode % 2:
    x = jnp.flip(x, axis=-3)
  return jnp.rot90(x, k=-(mode // 2), axes=(-3, -2))

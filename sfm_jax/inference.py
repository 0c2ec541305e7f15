"""Whole-image inference: padding to the model's size multiple, tiling for large images, and
the ×8 dihedral self-ensemble. Only one tile at a time is on the device when tiling."""

from __future__ import annotations

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
  return lambda lr: _whole_or_tiled(fn, lr, tile, tile_overlap)


def _pad_to_multiple(x: jax.Array, multiple: int) -> tuple[jax.Array, tuple[int, int]]:
  h, w = x.shape[1:3]
  ph, pw = -h % multiple, -w % multiple
  if ph or pw:
    x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
  return x, (h, w)


def run_tiled(fn, x: np.ndarray, tile: int, overlap: int) -> np.ndarray:
  """Applies fn to x (1, H, W, C) tile by tile: each tile×tile core is processed with `overlap`
  pixels of context on every side (fewer at the image border) and only the core is kept, so the
  result equals whole-image inference when overlap ≥ the model's receptive-field radius.
  fn maps (1, h, w, C) to (1, s·h, s·w, C'): s = 1 for denoisers, the scale for SR."""
  _, h, w, _ = x.shape
  out = None
  for top in range(0, h, tile):
    for left in range(0, w, tile):
      y0, x0 = max(top - overlap, 0), max(left - overlap, 0)
      y1, x1 = min(top + tile + overlap, h), min(left + tile + overlap, w)
      result = np.asarray(fn(jnp.asarray(x[:, y0:y1, x0:x1])))
      scale = result.shape[1] // (y1 - y0)
      if out is None:
        out = np.empty((1, h * scale, w * scale, result.shape[-1]), np.float32)
      dy, dx = (top - y0) * scale, (left - x0) * scale
      core = result[:, dy:dy + tile * scale, dx:dx + tile * scale]
      out[:, top * scale:top * scale + core.shape[1],
          left * scale:left * scale + core.shape[2]] = core
  return out


def restore_image(apply, image: np.ndarray, noise_level: float, *, multiple: int = 1,
                  tile: int = 0, tile_overlap: int = 32, self_ensemble: bool = False) -> np.ndarray:
  """Runs a restoration model `apply(x (1, h, w, C), level (1,)) -> (1, s·h, s·w, C)` (a
  denoiser, s = 1, or a super-resolver, which ignores the level) on one (H, W, C) image in
  [0, 1]; returns (s·H, s·W, C) float32 (not clipped)."""
  level = jnp.full((1,), noise_level, jnp.float32)

  def single(x):  # (1, h, w, C) device array -> (1, s·h, s·w, C)
    padded, (h, w) = _pad_to_multiple(x, multiple)
    out = apply(padded, level)
    scale = out.shape[1] // padded.shape[1]
    return out[:, :h * scale, :w * scale]

  return _whole_or_tiled(_ensembled(single, self_ensemble), image, tile, tile_overlap)


def _whole_or_tiled(fn, image: np.ndarray, tile: int, overlap: int) -> np.ndarray:
  """fn on one (H, W, C) image, tile by tile when it is larger than `tile` (0: never)."""
  x = np.asarray(image, np.float32)[None]
  if tile and max(x.shape[1:3]) > tile:
    return run_tiled(fn, x, tile, overlap)[0]
  return np.asarray(fn(jnp.asarray(x)))[0]


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

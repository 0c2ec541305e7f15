"""Argument checks shared by the ops: each failure is a ValueError that names the fix."""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp


def is_concrete_number(value) -> bool:
  """True for Python or numpy scalars (checkable at trace time), False for tracers and arrays."""
  return isinstance(value, numbers.Real)


def check_float_images(images, name: str = "images", min_rank: int = 3):
  """Checks that `images` is a floating array of rank >= `min_rank` in (..., H, W, C) layout."""
  if not hasattr(images, "dtype") or not hasattr(images, "ndim"):
    raise ValueError(f"{name} must be an array of shape (..., H, W, C); got "
                     f"{type(images).__name__}. Wrap it with jnp.asarray(...).")
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise ValueError(f"{name} has dtype {images.dtype}; ops expect floating images in [0, 1]. "
                     "Convert with images.astype(jnp.float32) / 255.")
  if images.ndim == 3 and min_rank == 4:
    raise ValueError(f"{name} has shape {tuple(images.shape)}, one (H, W, C) image; this op "
                     "takes a batch (B, H, W, C): add the batch axis with images[None].")
  if images.ndim < min_rank:
    raise ValueError(f"{name} has shape {tuple(images.shape)}; expected rank >= {min_rank} with "
                     "layout (..., H, W, C). Add a channel axis with images[..., None].")
  shape = tuple(images.shape)
  if 0 in shape[-3:]:
    raise ValueError(f"{name} has shape {shape}: an empty image (a zero-size axis); check the "
                     "crop or the file it came from.")
  if images.ndim == 4 and shape[1] in (1, 3, 4) and shape[-1] > 4:
    raise ValueError(f"{name} has shape {shape}, which looks like (B, C, H, W) (PyTorch's "
                     "layout); ops take (B, H, W, C): use images.transpose(0, 2, 3, 1).")


def check_unit_range(images, name: str = "images"):
  """For ops documented on [0, 1] images: a concrete array with values above 2 is most likely
  on the 0–255 scale (tracers pass: the check costs nothing under jit)."""
  if isinstance(images, jax.core.Tracer) or not images.size:
    return
  peak = jnp.max(images)
  if isinstance(peak, jax.core.Tracer):  # a constant inside a trace: checked when it runs eager
    return
  peak = float(peak)
  if peak > 2.0:
    raise ValueError(f"{name} holds values up to {peak:g}; this op takes images in [0, 1] "
                     "(8-bit images: images / 255).")


def check_batch(images, name: str = "images"):
  """Checks a (B, H, W, C) floating batch."""
  check_float_images(images, name, min_rank=4)
  if images.ndim != 4:
    raise ValueError(f"{name} has shape {tuple(images.shape)}; expected a batch (B, H, W, C). "
                     "Use images[None] for a single image or reshape extra leading axes into B.")


def check_unit_interval(value, name: str, *, low_open: bool = False):
  """Checks that a concrete number lies in [0, 1] (or (0, 1] with `low_open`); tracers pass."""
  if not is_concrete_number(value):
    return
  low_ok = value > 0 if low_open else value >= 0
  if not (low_ok and value <= 1):
    interval = "(0, 1]" if low_open else "[0, 1]"
    raise ValueError(f"{name}={value} is outside {interval}; it is a fraction, e.g. {name}=0.5.")


def check_nonnegative(value, name: str):
  """A concrete number must be finite and >= 0; tracers pass."""
  if is_concrete_number(value) and not math.isfinite(value):
    raise ValueError(f"{name}={value} is not a finite number; pass a value >= 0.")
  if is_concrete_number(value) and value < 0:
    raise ValueError(f"{name}={value} is negative; pass a value >= 0.")


def check_multiple_of(size: int, factor: int, name: str):
  if size % factor:
    raise ValueError(f"{name}={size} is not a multiple of {factor}; crop or pad the images to a "
                     f"multiple of {factor} first.")

"""SFM frequency masks over DCT-II coefficients, with the authors' exact geometry.

Geometry (majedelhelou/SFM `utils_SFM.py`): coefficient (i, j) of an H×W DCT lies at distance
D[i, j] = sqrt(i² + j²) from the DC corner, and band edges are fractions of
`radius = sqrt(H² + W²)` (not of the largest D). A mask is 1 where a coefficient is kept and 0
where it is dropped; the SFM masks drop the open band a1 < D < a2 (strict bounds), the low/high
masks of `get_mask_low_high` use inclusive bounds.

Modes (paper names, with the code's numbers):
  * "random" (0): every coefficient kept i.i.d. with probability `keep_prob` (0.5 in the code);
    what the released SR code uses.
  * "central" (1): both band edges ~ U(0, radius), sorted.
  * "targeted" (2): edges centre ∓ |N(0, σ)| with centre = radius_perc·radius and
    σ = sigma_perc·radius (two independent draws); what the released denoisers use.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sfm_jax.ops._checks import check_nonnegative, check_unit_interval

MODES = {"random": 0, "central": 1, "targeted": 2}
_MODE_NAMES = {v: k for k, v in MODES.items()}


def mode_name(mode: str | int) -> str:
  """Normalises a mode given as a name or the original code's number to its name."""
  if isinstance(mode, str) and mode.lower() in MODES:
    return mode.lower()
  if isinstance(mode, int | np.integer) and int(mode) in _MODE_NAMES:
    return _MODE_NAMES[int(mode)]
  raise ValueError(f"unknown SFM mode {mode!r}; use one of 'random' (0), 'central' (1), "
                   "'targeted' (2).")


@functools.lru_cache(maxsize=64)
def frequency_distance(height: int, width: int) -> np.ndarray:
  """D[i, j] = sqrt(i² + j²), float32 (H, W): distance of DCT index (i, j) from DC."""
  i = np.arange(height, dtype=np.float64)[:, None]
  j = np.arange(width, dtype=np.float64)[None, :]
  d = np.sqrt(i * i + j * j).astype(np.float32)
  d.setflags(write=False)
  return d


def sfm_radius(height: int, width: int) -> float:
  """The radius that SFM's percentages refer to: sqrt(H² + W²)."""
  return float(np.sqrt(height * height + width * width))


def band_drop_masks(height: int, width: int, low: jax.Array, high: jax.Array) -> jax.Array:
  """Masks that drop the open band low < D < high, one per pair of edges.

  Args:
    height, width: spatial size of the DCT.
    low, high: band edges in coefficient-index units, shape (B,) (any values; low > high
      drops nothing, a negative low includes DC).
  Returns:
    float32 (B, H, W) masks, 1 = keep.
  """
  d = jnp.asarray(frequency_distance(height, width))
  low = jnp.asarray(low, jnp.float32)[:, None, None]
  high = jnp.asarray(high, jnp.float32)[:, None, None]
  return jnp.where((d > low) & (d < high), 0.0, 1.0).astype(jnp.float32)


def random_masks(key: jax.Array, batch: int, height: int, width: int,
                 keep_prob: float = 0.5) -> jax.Array:
  """Mode 0: each coefficient kept i.i.d. with probability `keep_prob`. float32 (B, H, W)."""
  check_unit_interval(keep_prob, "keep_prob")
  u = jax.random.uniform(key, (batch, height, width))
  return (u <= keep_prob).astype(jnp.float32)


def central_masks(key: jax.Array, batch: int, height: int, width: int) -> jax.Array:
  """Mode 1 ("central"): both band edges ~ U(0, radius), sorted. float32 (B, H, W)."""
  edges = jax.random.uniform(key, (2, batch)) * sfm_radius(height, width)
  return band_drop_masks(height, width, edges.min(axis=0), edges.max(axis=0))


def targeted_masks(key: jax.Array, batch: int, height: int, width: int,
                   radius_perc: float = 0.85, sigma_perc: float = 0.15) -> jax.Array:
  """Mode 2 ("targeted"): band [c − |N(0,σ)|, c + |N(0,σ)|], c = radius_perc·R, σ = sigma_perc·R.

  Returns float32 (B, H, W). Raises ValueError if radius_perc is outside [0, 1] (the original
  raises for a centre outside [0, radius]) or sigma_perc < 0.
  """
  check_unit_interval(radius_perc, "radius_perc")
  check_nonnegative(sigma_perc, "sigma_perc")
  radius = sfm_radius(height, width)
  half_widths = jnp.abs(jax.random.normal(key, (2, batch))) * (sigma_perc * radius)
  center = radius_perc * radius
  return band_drop_masks(height, width, center - half_widths[0], center + half_widths[1])


def sample_masks(key: jax.Array, batch: int, height: int, width: int, *,
                 mode: str | int = "targeted", radius_perc: float = 0.85,
                 sigma_perc: float = 0.15, keep_prob: float = 0.5) -> jax.Array:
  """Draws B SFM masks of the given mode, float32 (B, H, W), 1 = keep."""
  name = mode_name(mode)
  if name == "random":
    return random_masks(key, batch, height, width, keep_prob)
  if name == "central":
    return central_masks(key, batch, height, width)
  return targeted_masks(key, batch, height, width, radius_perc, sigma_perc)


def low_high_mask(height: int, width: int, radius_perc: float = 0.5,
                  keep: str = "low") -> np.ndarray:
  """The deterministic masks of `get_mask_low_high`, float32 (H, W), inclusive bounds.

  keep="low" (the code's mask_mode 2) drops center ≤ D ≤ radius; keep="high" (mask_mode 1) drops
  0 ≤ D ≤ center, with center = radius_perc·sqrt(H² + W²). A coefficient at exactly D = center is
  dropped by both, as in the original.
  """
  check_unit_interval(radius_perc, "radius_perc")
  d = frequency_distance(height, width)
  radius = sfm_radius(height, width)
  center = np.float32(radius_perc * radius)
  if keep == "low":
    dropped = (d >= center) & (d <= np.float32(radius))
  elif keep == "high":
    dropped = d <= center
  else:
    raise ValueError(f"keep={keep!r} is not a band; use keep='low' or keep='high'.")
  return np.where(dropped, 0.0, 1.0).astype(np.float32)

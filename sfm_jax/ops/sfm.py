"""Stochastic Frequency Masking of image batches (El Helou et al., ECCV 2020)."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from sfm_jax.ops._checks import (
  check_batch,
  check_nonnegative,
  check_unit_interval,
  check_unit_range,
)
from sfm_jax.ops._sharding import per_batch_shard
from sfm_jax.ops.dct import filter_dct, synthesize_dct
from sfm_jax.ops.masks import mode_name, sample_masks
from sfm_jax.ops.noise import gaussian_noise

UNSELECTED = ("keep", "zero")


def _check_masks(x: jax.Array, masks: jax.Array, name: str):
  check_batch(x, name)
  if masks.shape != x.shape[:3]:
    raise ValueError(f"masks shape {tuple(masks.shape)} does not match the batch's (B, H, W) = "
                     f"{tuple(x.shape[:3])}; use the masks returned by apply_sfm for this batch.")


def apply_masks(x: jax.Array, masks: jax.Array) -> jax.Array:
  """Multiplies the DCT of every image by its mask: idct2(dct2(x) · mask).

  Images whose mask is constant (all ones: unselected, or all zeros: zeroed) are scaled without
  a transform; only the others (SFM's selected images) pay for the DCTs.

  Args:
    x: float (B, H, W, C), e.g. the clean batch or the noise of SFM_noise=1.
    masks: (B, H, W) from `apply_sfm`, shared across channels.
  Returns:
    (B, H, W, C) filtered images (not clipped: they can leave [0, 1], as in the original).
  """
  _check_masks(x, masks, "x")
  return _on_masked_images(filter_dct, x, masks)


def masked_gaussian_noise(key: jax.Array, masks: jax.Array, sigma, channels: int = 1,
                          dtype=jnp.float32) -> jax.Array:
  """White Gaussian noise of level σ (0–255 scale) passed through the SFM masks.

  Distributed exactly as `apply_masks(gaussian_noise(key, shape, sigma), masks)` (the
  orthonormal DCT of i.i.d. Gaussian noise is i.i.d. Gaussian with the same σ), but drawn in the
  DCT domain, so it costs one inverse DCT instead of a forward and an inverse. This is the
  SFM_noise=1 noise of the original.

  Args:
    key: PRNG key.
    masks: (B, H, W) masks from `apply_sfm`.
    sigma: scalar or (B,) noise levels on the 0–255 scale.
    channels: C of the returned (B, H, W, C) noise.
  """
  check_nonnegative(sigma, "sigma")
  coeffs = gaussian_noise(key, (*masks.shape, channels), sigma).astype(dtype)
  return _on_masked_images(synthesize_dct, coeffs, masks)


# The images to transform are processed in chunks of ceil(B / 16), so the work follows the number
# selected to within 1/16 of the batch: the base-4 digits of the chunk count, as a loop of
# 4-chunk and a loop of 1-chunk sub-batches. Two transform sizes to compile (the first call
# takes about a third of the time of one branch per 1/16, see benchmarks/sfm_compile.py), at
# the same steady-state speed.
CHUNKS = 16


@functools.partial(jax.jit, static_argnums=0)
def _on_masked_images(transform, x: jax.Array, masks: jax.Array) -> jax.Array:
  """transform(x, masks) on the images with a non-constant mask; c·x on the others. Each
  device does its own share of an explicitly sharded batch."""
  if x.shape[0] == 0:
    return x
  return per_batch_shard(functools.partial(_transform_active, transform), x,
                         masks.astype(x.dtype))


def _transform_active(transform, x: jax.Array, masks: jax.Array) -> jax.Array:
  """`_on_masked_images` on one (unsharded) batch. Under jit shapes are static, so the active
  images are moved to the front and covered by static sub-batches of whole chunks."""
  batch = x.shape[0]
  flat = masks.reshape(batch, -1)
  active = flat.min(axis=1) != flat.max(axis=1)
  out = x * masks[:, :1, :1, None]  # exact for constant masks, overwritten for the active ones
  order = jnp.argsort(~active, stable=True)
  chunk = math.ceil(batch / CHUNKS)
  needed = (active.sum() + chunk - 1) // chunk  # chunks that hold every active image

  def transform_chunks(first_chunk, count, out):
    """`out` with the images of chunks [first_chunk, first_chunk + count) transformed."""
    size = min(count * chunk, batch)
    # a sub-batch that would run past the batch is moved back (images done twice: same)
    start = jnp.minimum(first_chunk * chunk, batch - size)
    idx = jax.lax.dynamic_slice(order, (start,), (size,))
    done = transform(x[idx], masks[idx])
    return out.at[idx].set(jnp.where(active[idx][:, None, None, None], done, out[idx]))

  fours, ones = needed // 4, needed % 4
  out = jax.lax.fori_loop(0, fours, lambda i, out: transform_chunks(4 * i, 4, out), out)
  return jax.lax.fori_loop(0, ones, lambda i, out: transform_chunks(4 * fours + i, 1, out), out)


def apply_sfm(key: jax.Array, images: jax.Array, *, rate: float = 0.5,
              mode: str | int = "targeted", radius_perc: float = 0.85,
              sigma_perc: float = 0.15, unselected: str = "keep",
              keep_prob: float = 0.5) -> tuple[jax.Array, jax.Array]:
  """SFM: each image is selected with probability `rate` and its DCT band-masked.

  One mask per image is shared by all its channels. Selection is an independent Bernoulli(rate)
  per image (as `np.random.choice` in the original), so the number selected varies. Works under
  `jax.jit` and `jax.vmap`; `rate`, `radius_perc`, `sigma_perc` and `keep_prob` may be traced
  (out-of-range concrete values raise ValueError; traced ones are clipped to their ranges).
  A batch sharded under an explicit mesh is masked by every device on its share, with the
  draws of the whole batch; inside `jax.shard_map` each shard draws from `key` itself (fold in
  `jax.lax.axis_index` for different draws per shard). An empty batch gives an empty batch.

  Args:
    key: PRNG key.
    images: float (B, H, W, C) in [0, 1].
    rate: SFM rate (the original's DCT_DOR), in [0, 1].
    mode: "random" (0), "central" (1) or "targeted" (2); see `sfm_jax.ops.masks`.
    radius_perc, sigma_perc: band centre and spread for "targeted", as fractions of
      sqrt(H² + W²). The released denoisers use 0.85 / 0.15.
    unselected: what happens to images SFM does not select. "keep" (default; the paper and the
      README snippet) leaves them unchanged; "zero" replaces them with zeros, as every released
      training script does (e.g. SFM `Denoising/train.py`), for parity with the released
      checkpoints; see `docs/deviations.md`, "Unselected images in an SFM batch".
    keep_prob: keep probability of each coefficient in mode "random".
  Returns:
    (masked images (B, H, W, C), effective masks (B, H, W)). The mask of an unselected image is
    all ones ("keep") or all zeros ("zero"), so `apply_masks(noise, masks)` reproduces the
    original's SFM_noise=1 batch in both settings.
  """
  check_batch(images)
  check_unit_range(images)
  check_unit_interval(rate, "rate")
  check_unit_interval(radius_perc, "radius_perc")
  check_nonnegative(sigma_perc, "sigma_perc")
  check_unit_interval(keep_prob, "keep_prob")
  if unselected not in UNSELECTED:
    raise ValueError(f"unselected={unselected!r}; use 'keep' (paper) or 'zero' (released code).")
  return _apply_sfm(key, images, rate, radius_perc, sigma_perc, keep_prob,
                    mode=mode_name(mode), unselected=unselected)


@functools.partial(jax.jit, static_argnames=("mode", "unselected"))
def _apply_sfm(key, images, rate, radius_perc, sigma_perc, keep_prob, *, mode, unselected):
  batch, height, width, _ = images.shape
  if batch == 0:
    return images, jnp.ones((0, height, width), images.dtype)
  # concrete values were checked; traced ones are clipped to the same ranges
  rate, radius_perc, keep_prob = (jnp.clip(v, 0.0, 1.0) for v in (rate, radius_perc, keep_prob))
  sigma_perc = jnp.maximum(sigma_perc, 0.0)
  select_key, mask_key = jax.random.split(key)
  selected = jax.random.bernoulli(select_key, rate, (batch,))
  band = sample_masks(mask_key, batch, height, width, mode=mode, radius_perc=radius_perc,
                      sigma_perc=sigma_perc, keep_prob=keep_prob)
  fill = 1.0 if unselected == "keep" else 0.0
  masks = jnp.where(selected[:, None, None], band, fill)
  return _on_masked_images(filter_dct, images, masks), masks

"""Denoising tasks, synthesised on device inside the jitted step from PRNG keys.

* "supervised" (SFM `Denoising/train.py`): blind σ ~ U(lo, hi) per image; SFM on the clean
  batch before the noise; loss Σ((noisy − out) − noise)² / 2B, i.e. the residual is compared
  with the added noise, so the effective clean target is the SFM'd image (docs/deviations.md,
  "Denoising target under SFM").
* "n2n" (SFM `Denoising/Microscopy/train_n2n_BSD.py`): input clean + n1 (SFM on the noisy
  input), target clean + n2 at the same σ.
* "n2s" (Noise2Self, SFM `Denoising/Microscopy/train_n2s.py` and its `mask.py`): one pixel in
  each 3×3 cell (phase = step mod 9) is replaced by uniform noise in the input; the loss only
  sees those pixels of the un-SFM'd noisy image.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from sfm_jax import ops
from sfm_jax.tasks.base import Task

KINDS = ("supervised", "n2n", "n2s")
NOISE_TYPES = ("white", "low", "high", "brownian")


@dataclasses.dataclass(frozen=True)
class DenoiseTask(Task):
  """Static description of the degradation (hashable, so it can close over a jitted step)."""
  kind: str = "supervised"
  sigma_range: tuple[float, float] = (0.0, 55.0)
  noise: str = "white"  # the original's mask_train_noise 0 / 2 / 1 / 3
  sfm_rate: float = 0.0
  sfm_mode: str = "targeted"
  sfm_radius_perc: float = 0.85
  sfm_sigma_perc: float = 0.15
  # "zero" reproduces the released scripts (docs/deviations.md, "Unselected images in an SFM
  # batch")
  sfm_unselected: str = "keep"
  sfm_keep_prob: float = 0.5
  sfm_noise: bool = False  # the original's SFM_noise=1: the same masks on the noise

  protocol = "denoise"

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"task.kind={self.kind!r}; use one of {KINDS}.")
    if self.noise not in NOISE_TYPES:
      raise ValueError(f"task.noise={self.noise!r}; use one of {NOISE_TYPES}.")
    low, high = self.sigma_range
    if not 0 <= low <= high:
      raise ValueError(f"task.sigma_range={self.sigma_range}; use 0 <= low <= high (0–255).")

  # The interface every task offers the training loop.
  def synthesize(self, key: jax.Array, clean: jax.Array, step: jax.Array) -> dict:
    return synthesize(self, key, clean, step)

  def predict(self, model, batch: dict) -> jax.Array:
    return model(batch["noisy"], batch["noise_level"])

  def loss(self, output: jax.Array, batch: dict) -> jax.Array:
    return loss_fn(output, batch)

  def validation_settings(self, config):
    """The denoising protocol of config.eval at its single validation σ (eval.sigma)."""
    settings = super().validation_settings(config)
    settings.sigmas, settings.self_ensemble = (float(config.eval.sigma),), False
    return settings


def _noise(task: DenoiseTask, key: jax.Array, shape, sigma: jax.Array) -> jax.Array:
  noise = ops.gaussian_noise(key, shape, sigma)
  if task.noise in ("low", "high"):
    return ops.band_limited(noise, task.noise)
  if task.noise == "brownian":
    return ops.brownian(noise)
  return noise


def _sfm(task: DenoiseTask, key: jax.Array, images: jax.Array):
  if task.sfm_rate == 0:
    return images, None
  return ops.apply_sfm(key, images, rate=task.sfm_rate, mode=task.sfm_mode,
                       radius_perc=task.sfm_radius_perc, sigma_perc=task.sfm_sigma_perc,
                       unselected=task.sfm_unselected, keep_prob=task.sfm_keep_prob)


def n2s_mask(step: jax.Array, shape) -> jax.Array:
  """Noise2Self pixel grid: 1 where i % 3 == phase_x and j % 3 == phase_y, (1, H, W, 1)."""
  phase_x, phase_y = step % 3, (step // 3) % 3
  rows = jnp.arange(shape[1])[:, None] % 3 == phase_x
  cols = jnp.arange(shape[2])[None, :] % 3 == phase_y
  return (rows & cols).astype(jnp.float32)[None, :, :, None]


def synthesize(task: DenoiseTask, key: jax.Array, clean: jax.Array, step: jax.Array):
  """Clean patches (B, H, W, C) in [0, 1] -> dict(noisy, target, weight, noise_level).

  The loss is Σ(weight · (model(noisy) − target))² / 2B; noise_level is σ/255 per image.
  """
  sigma_key, sfm_key, noise_key, other_key = jax.random.split(key, 4)
  sigma = ops.sample_sigmas(sigma_key, clean.shape[0], *task.sigma_range)
  noise = _noise(task, noise_key, clean.shape, sigma)
  weight = jnp.ones((), clean.dtype)
  if task.kind == "supervised":
    source, masks = _sfm(task, sfm_key, clean)
    masked_noise = ops.apply_masks(noise, masks) if task.sfm_noise and masks is not None else noise
    noisy = source + masked_noise
    target = noisy - noise  # the residual is compared with the (unmasked) added noise
  elif task.kind == "n2n":
    noisy, _ = _sfm(task, sfm_key, clean + noise)
    target = clean + _noise(task, other_key, clean.shape, sigma)
  else:  # n2s
    noisy_plain = clean + noise
    weight = n2s_mask(step, clean.shape)
    sfm_input, _ = _sfm(task, sfm_key, noisy_plain)
    fill = jax.random.uniform(other_key, clean.shape)
    noisy = sfm_input * (1 - weight) + fill * weight
    target = noisy_plain
  return {"noisy": noisy, "target": target, "weight": weight, "noise_level": sigma / 255.0}


def loss_fn(output: jax.Array, batch: dict) -> jax.Array:
  """Σ(weight · (output − target))² / 2B, the SFM scripts' `MSELoss(sum) / (2B)`."""
  err = batch["weight"] * (output - batch["target"])
  return jnp.sum(err**2) / (2 * output.shape[0])

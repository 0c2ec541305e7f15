"""Super-resolution, synthesised on device from clean HR patches, as SFM's `SR/train.py` and
`SR/model/common.py` intend (docs/deviations.md, "SR training pipeline").

HR -> optional SFM (the paper's "central" mode by default; mode 0 = "random" as the released
code; docs/deviations.md, "SFM mode for super-resolution") -> optional Gaussian blur
(σ ~ U(range), e.g. IKC's 0.2–4 on 21×21) -> MATLAB bicubic downsampling -> LR. The network
maps LR to HR; loss L1 against the untouched HR.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from sfm_jax import ops
from sfm_jax.tasks.base import Task


@dataclasses.dataclass(frozen=True)
class SRTask(Task):
  kind: str = "sr"
  scale: int = 4
  blur_sigma_range: tuple[float, float] = (0.0, 0.0)  # (0, 0): plain bicubic degradation
  kernel_size: int = 21
  sfm_rate: float = 0.0
  sfm_mode: str = "central"
  sfm_radius_perc: float = 0.85
  sfm_sigma_perc: float = 0.15
  sfm_unselected: str = "keep"
  sfm_keep_prob: float = 0.5
  # feed the bicubic-upscaled LR (KMSR has no upsampler; docs/deviations.md, "KMSR input")
  pre_upscale: bool = False

  protocol = "sr"

  def __post_init__(self):
    if self.scale not in (2, 3, 4):
      raise ValueError(f"task.scale={self.scale}; use 2, 3 or 4.")

  def degrade(self, key: jax.Array, hr: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """HR patches (B, P, P, C) in [0, 1], P a multiple of the scale -> (LR (B, P/s, P/s, C),
    the blur kernels (B, k, k) or None without blur)."""
    sfm_key, blur_key = jax.random.split(key)
    source, kernels = hr, None
    if self.sfm_rate > 0:
      source, _ = ops.apply_sfm(sfm_key, hr, rate=self.sfm_rate, mode=self.sfm_mode,
                                radius_perc=self.sfm_radius_perc,
                                sigma_perc=self.sfm_sigma_perc, unselected=self.sfm_unselected,
                                keep_prob=self.sfm_keep_prob)
    if self.blur_sigma_range[1] > 0:
      kernels, _ = ops.sample_gaussian_kernels(blur_key, hr.shape[0], self.kernel_size,
                                               self.blur_sigma_range)
      source = ops.blur(source, kernels)
    return ops.imresize(source, scale=1.0 / self.scale), kernels

  def synthesize(self, key: jax.Array, hr: jax.Array, step: jax.Array) -> dict:
    """HR patches (B, P, P, C) in [0, 1], P a multiple of the scale -> dict(lr, target)."""
    lr, _ = self.degrade(key, hr)
    return {"lr": lr, "target": hr}

  def _model_input(self, lr: jax.Array) -> jax.Array:
    return ops.imresize(lr, scale=float(self.scale)) if self.pre_upscale else lr

  def predict(self, model, batch: dict) -> jax.Array:
    return model(self._model_input(batch["lr"]))

  def loss(self, output: jax.Array, batch: dict) -> jax.Array:
    return jnp.mean(jnp.abs(output - batch["target"]))

  def predictor(self, apply):
    """f(lr (1, h, w, C)) -> SR (1, s·h, s·w, C) of the trained network."""
    return lambda lr: apply(self._model_input(lr))

  @property
  def val_blur_sigma(self) -> float:
    """The blur of the validation LR: the middle of the training range (0: none)."""
    return 0.5 * (self.blur_sigma_range[0] + self.blur_sigma_range[1])

  label = "SR"  # the model's column in the validation line

  def validation_settings(self, config):
    """The SR protocol (config.eval.y_channel, crop = scale) on whole images degraded as in
    training: blur σ `val_blur_sigma`, MATLAB bicubic, uint8."""
    settings = super().validation_settings(config)
    settings.update(scale=self.scale, blur_sigmas=(self.val_blur_sigma,),
                    kernel_size=self.kernel_size, label=self.label, niqe=False)
    return settings

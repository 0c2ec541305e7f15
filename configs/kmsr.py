"""KMSR's ResBlockNet (RGB) ×4: it has no upsampler, so it restores the bicubic-upscaled LR
(`docs/deviations.md`, "KMSR input"); Gaussian-blurred degradations (σ ∈ [0.2, 4], 21×21)
stand in for KMSR's GAN kernels, which are not released."""

from sfm_jax.config_base import sr_config


def get_config():
  c = sr_config("kmsr", 4, channels=3)
  c.task.pre_upscale = True
  c.task.blur_sigma_range = (0.2, 4.0)
  return c

"""KMSR's ResBlockNet (RGB) ×4: it has no upsampler, so it restores the bicubic-upscaled LR
(spec A12); Gaussian-blurred degradations (σ ∈ [0.2, 4], 21×21) stand in for KMSR's GAN kernels,
which are not released."""

from sfm_jax.config_base import sr_config


def get_config():
  c = sr_config("kmsr", 4, channels=3)
  del c.model.kwargs["scale"]  # ResBlockNet keeps the input size
  c.task.pre_upscale = True
  c.task.blur_sigma_range = (0.2, 4.0)
  return c

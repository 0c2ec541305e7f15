"""FFDNet (gray, 15 × 64) on the SFM recipe: blind σ ∈ [0, 55], the noise level as input."""

from sfm_jax.config_base import bsd400_config


def get_config():
  c = bsd400_config("ffdnet")
  c.task.sigma_range = (0.0, 75.0)  # FFDNet's training range
  return c

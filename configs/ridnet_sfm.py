"""RIDNet with SFM: rate 0.5, targeted mode, radius 0.85, sigma 0.15."""

from sfm_jax.config_base import bsd400_config, with_sfm


def get_config():
  return with_sfm(bsd400_config("ridnet"))

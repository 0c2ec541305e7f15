"""RIDNet, blind σ ∈ [0, 55], no SFM."""

from sfm_jax.config_base import bsd400_config


def get_config():
  return bsd400_config("ridnet")

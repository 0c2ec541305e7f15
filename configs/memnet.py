"""MemNet (6 memory blocks × 4 residual blocks, 20 features), blind σ ∈ [0, 55], no SFM."""

from sfm_jax.config_base import bsd400_config


def get_config():
  return bsd400_config("memnet")

"""RCAN ×4 (gray, 10 groups × 20 RCABs) on DIV2K, bicubic degradation, no SFM."""

from sfm_jax.config_base import sr_config


def get_config():
  return sr_config("rcan", 4)

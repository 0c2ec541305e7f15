"""RRDBNet ×4 (gray, as in SFM's SR code) on DIV2K, bicubic degradation, no SFM."""

from sfm_jax.config_base import sr_config


def get_config():
  return sr_config("rrdb", 4)

"""RRDBNet ×4 with SFM (rate 0.5, central mode) on the HR before degradation."""

from sfm_jax.config_base import sr_config, with_sr_sfm


def get_config():
  return with_sr_sfm(sr_config("rrdb", 4))

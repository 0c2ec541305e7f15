"""FRSR ×4 (NatSR's distortion-oriented generator, RGB) on DIV2K with L1."""

from sfm_jax.config_base import sr_config


def get_config():
  return sr_config("frsr", 4, channels=3)

"""RDN ×2 (RGB, 16 blocks × 8 layers, G0 = G = 64; the MVA practical's network) on DIV2K."""

from sfm_jax.config_base import sr_config


def get_config():
  return sr_config("rdn", 2, channels=3)

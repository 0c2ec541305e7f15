"""DnCNN-B (17 layers), blind σ ∈ [0, 55], BSD400, no SFM: the SFM paper's regular baseline."""

from sfm_jax.config_base import bsd400_config


def get_config():
  return bsd400_config("dncnn")

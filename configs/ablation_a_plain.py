"""SFM ablation, arm (A): no SFM.

One of the arms of `python studies/sfm_ablation.py` (docs/sfm_ablation.md)."""

from sfm_jax.config_base import sfm_ablation_config


def get_config():
  return sfm_ablation_config("a_plain")

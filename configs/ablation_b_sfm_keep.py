"""SFM ablation, arm (B): SFM (rate 0.5, targeted 0.85/0.15), unselected images kept: the paper.

One of the arms of `python studies/sfm_ablation.py` (docs/sfm_ablation.md)."""

from sfm_jax.config_base import sfm_ablation_config


def get_config():
  return sfm_ablation_config("b_sfm_keep")

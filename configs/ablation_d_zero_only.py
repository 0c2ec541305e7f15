"""SFM ablation, arm (D): half the images zeroed as in the released scripts, the others left
unmasked (mode random, keep probability 1): the zeroing without the frequency masking.

One of the arms of `python studies/sfm_ablation.py` (docs/sfm_ablation.md)."""

from sfm_jax.config_base import sfm_ablation_config


def get_config():
  return sfm_ablation_config("d_zero_only")

"""SFM ablation, arm (E): SFM (targeted 0.85/0.15) on every image (rate 1), none zeroed: arm C's
batches with a band-masked image in place of each black one.

One of the arms of `python studies/sfm_ablation.py` (docs/sfm_ablation.md)."""

from sfm_jax.config_base import sfm_ablation_config


def get_config():
  return sfm_ablation_config("e_sfm_all")

"""The config of `eval.py --weights FILE` runs without `--config`: the eval fields of both
protocols (denoising and SR) and IKC's correction count.

Each setting comes from, lowest first: these defaults, the weights file's metadata (the eval
fields of the config it was trained with) and `--config.eval.x=…` on the command line.
"""

import ml_collections

from sfm_jax.config_base import eval_fields


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.eval = eval_fields("sr")
  c.eval.update(eval_fields("denoise"))
  c.eval.corrections = 7  # IKC: Corrector steps
  return c

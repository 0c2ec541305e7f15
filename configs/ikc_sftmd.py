"""IKC stage 1: SFTMD ×4 (RGB) on LR + true kernel code, L1, 500k steps of Adam 1e-4 with cosine
restarts every 125k steps down to 1e-7 (IKC's CosineAnnealingLR_Restart).

  python train.py --config configs/ikc_sftmd.py --workdir runs/ikc_sftmd
"""

from sfm_jax.config_base import ikc_config


def get_config():
  c = ikc_config("sftmd")
  c.optim.schedule = "cosine_restarts"
  c.optim.cycle_steps, c.optim.cycles, c.optim.min_learning_rate = 125_000, 4, 1e-7
  c.train.steps = 500_000
  return c

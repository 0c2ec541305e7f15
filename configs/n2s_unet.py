"""Noise2Self U-Net (SFM `Denoising/Microscopy/train_n2s.py` and `mask.py`): 3×3 grid masking
with uniform fill, loss on the masked pixels only; Adam(1e-5, β2 0.99), batch 64, SFM off
(enable with task.sfm_rate=0.5)."""

from sfm_jax.config_base import bsd400_config


def get_config():
  c = bsd400_config("unet")
  c.task.kind = "n2s"
  c.optim.learning_rate = 1e-5
  c.optim.b2 = 0.99
  c.optim.decay_epochs = ()
  c.train.batch_size = 64
  return c

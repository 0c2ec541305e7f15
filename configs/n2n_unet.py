"""Noise2Noise U-Net on BSD400 patches (spec §4.5): input and target are two independent noisy
copies at the same blind σ; Adam(1e-4, β2 0.99), batch 64, 51 epochs, SFM off."""

from sfm_jax.config_base import bsd400_config


def get_config():
  c = bsd400_config("unet")
  c.task.kind = "n2n"
  c.optim.learning_rate = 1e-4
  c.optim.b2 = 0.99
  c.optim.decay_epochs = ()  # the original's per-iteration decay from epoch 30 is a bug (A16)
  c.train.batch_size = 64
  c.train.epochs = 51
  return c

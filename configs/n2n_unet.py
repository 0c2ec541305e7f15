"""Noise2Noise U-Net on BSD400 patches (SFM `Denoising/Microscopy/train_n2n_BSD.py`): input and
target are two independent noisy copies at the same blind σ; Adam(1e-4, β2 0.99), batch 64,
51 epochs, SFM off. The original multiplies the learning rate by 0.1 at every iteration from
epoch 30 on (`docs/deviations.md`, "Noise2Noise learning-rate collapse"); here it stays constant."""

from sfm_jax.config_base import bsd400_config


def get_config():
  c = bsd400_config("unet")
  c.task.kind = "n2n"
  c.optim.learning_rate = 1e-4
  c.optim.b2 = 0.99
  c.optim.decay_epochs = ()  # no decay: the original's per-iteration decay is a bug
  c.train.batch_size = 64
  c.train.epochs = 51
  return c

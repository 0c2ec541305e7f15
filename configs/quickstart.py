"""Quickstart: a small DnCNN (7 layers × 32 features) trained for a few minutes on CPU on
scikit-image's bundled photos, validated on held-out ones (camera, moon, clock) at σ = 25."""

from sfm_jax.config_base import denoising_config


def get_config():
  c = denoising_config()
  c.model.kwargs.update(num_layers=7, features=32)
  c.data.patch_size = 40
  c.data.stride = 40
  c.data.scales = (1.0, 0.7)
  c.data.aug_copies = 0
  c.task.sfm_rate = 0.5  # SFM as released
  c.optim.learning_rate = 2e-3
  c.optim.decay_epochs = ()
  c.train.batch_size = 32
  c.train.steps = 400
  c.train.eval_every = 200
  c.train.checkpoint_every = 200
  c.train.log_every = 50
  c.eval.sigmas = (15, 25, 50)
  return c

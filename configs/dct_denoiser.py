"""The MVA practical's 7×7 DCT denoiser with a learnable threshold ratio (differentiable hard
thresholding); the whole model has one parameter, so a few hundred steps suffice."""

from sfm_jax.config_base import bsd400_config


def get_config():
  c = bsd400_config("dct_denoiser", patch=7, ratio=2.0, threshold="dhard", learnable=True,
                    temperature=0.05)
  c.task.sigma_range = (15.0, 50.0)
  c.optim.learning_rate = 1e-2
  c.optim.decay_epochs = ()
  c.train.batch_size = 32
  c.train.steps = 500
  return c

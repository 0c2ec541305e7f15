"""CPU SR smoke run: a small RRDBNet ×2 on the bundled photos, validated on held-out ones."""

from sfm_jax.config_base import sr_config


def get_config():
  c = sr_config("rrdb", 2, nb=2, nf=16, gc=8)
  c.data.source, c.data.val_source = "builtin", "builtin"
  c.data.patch_size = c.data.stride = 48
  c.optim.learning_rate = 5e-4
  c.train.steps = 300
  c.train.eval_every = c.train.checkpoint_every = 150
  return c

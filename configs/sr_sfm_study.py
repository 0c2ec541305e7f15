"""The CPU-sized version of SFM's SR claim (docs/reproduction.md, "SFM for super-resolution,
CPU-sized"): a small RRDBNet ×2, gray, trained on one Gaussian blur (σ = 1.0, 21×21) followed by
MATLAB bicubic downsampling, and evaluated over a kernel sweep with `eval.py --task sr --blur_sigmas
...`.

  python train.py --config configs/sr_sfm_study.py                       # without SFM
  python train.py --config configs/sr_sfm_study.py --config.task.sfm_rate=0.5  # with SFM

Point data.source / data.val_source at image folders (docs/reproduction.md uses BSD400 and
Set14)."""

from sfm_jax.config_base import sr_config


def get_config():
  c = sr_config("rrdb", 2, nb=2, nf=32, gc=16)
  c.data.source, c.data.val_source = "builtin", "builtin"
  c.data.patch_size, c.data.stride = 48, 40
  c.data.pipeline = "fixed"  # the grid of patches the documented study was measured on
  c.task.blur_sigma_range = (1.0, 1.0)
  c.task.sfm_mode = "central"
  c.optim.learning_rate = 5e-4
  c.optim.decay_epochs = (3,)  # ×0.1 for the last fifth (BSD400: 800 steps per epoch)
  c.train.batch_size = 16
  c.train.steps = 3000
  c.train.log_every = 100
  c.train.eval_every = c.train.checkpoint_every = 1000
  return c

"""NatSR's Natural Manifold Discriminator (JWSoh/NatSR `Train_NMD/`): DIV2K HR 192×192 patches
(stride 120, RGB), batch 32 (8 noisy inject_dct, 8 blurry α·HR + (1−α)·ILR, 16 natural), Adam
1e-4, the σ / α curriculum checked every 100 steps on 200 held-out patches.

  python train.py --config configs/nmd.py --workdir runs/nmd
The released code moves α only when the windowed accuracy equals 95%:
--config.task.alpha_rule=equal.
"""


from sfm_jax.config_base import base_config, task_config


def get_config():
  c = base_config("nmd", channels=3, nf=64)
  c.data.source = "tfds:div2k/bicubic_x4:train"
  c.data.val_source = "tfds:div2k/bicubic_x4:validation"
  c.data.patch_size, c.data.stride = 192, 120
  c.data.scales = (1.0,)
  c.task = task_config("nmd")  # fields: tasks.nmd.NMDTask
  c.optim.learning_rate = 1e-4
  c.optim.decay_epochs = ()
  c.train.batch_size = 32
  c.train.steps = 300_000
  c.train.eval_every = c.train.checkpoint_every = 10_000
  return c

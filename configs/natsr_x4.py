"""NatSR ×4 (JWSoh/NatSR `train.py`): FRSR fine-tuned with L1 + 1e-3·naturalness (frozen NMD)
+ 1e-3·RaGAN against the spectrally normalised discriminator; 192×192 HR patches, batch 32,
Adam 2e-4 halved to 1e-4 at 100k steps for both networks (the released code counts two
global steps per iteration, so it halves at 50k: --config.optim.decay_steps=50000).

Three runs, each feeding the next:
  python train.py --config configs/frsr_x4.py --workdir runs/frsr          # L1 pre-training
  python train.py --config configs/nmd.py --workdir runs/nmd               # the NMD
  python train.py --config configs/natsr_x4.py --workdir runs/natsr \
      --config.model.init_weights=runs/frsr/weights.msgpack \
      --config.task.nmd_weights=runs/nmd/weights.msgpack
"""

from sfm_jax.config_base import adversarial_sr_config


def get_config():
  c = adversarial_sr_config("frsr", 4, 3, "natsr_discriminator", wiring="current")
  c.task.update({"pixel_weight": 1.0, "naturalness_weight": 1e-3, "adversarial_weight": 1e-3,
                 "ragan_reduction": "sum"})
  c.data.patch_size, c.data.stride = 192, 120
  c.train.batch_size = 32
  c.optim.learning_rate = 2e-4
  c.optim.decay_steps = (100_000,)
  c.optim.decay_factor = 0.5
  c.train.steps = 200_000
  c.train.eval_every = c.train.checkpoint_every = 10_000
  return c

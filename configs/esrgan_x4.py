"""ESRGAN ×4 as SFM trains it (majedelhelou/SFM `SR/train.py`): gray RRDBNet generator against
the VGG-128 discriminator, L_G = 0.01·L1 + 1.0·L1(VGG19 conv5_4) + 0.005·RaGAN (mean of the two
terms), Adam 1e-4 with weight decay 1e-5 for both networks, 128×128 HR patches, batch 16.

The perceptual loss needs torchvision's VGG19 weights, converted once:
  python -m sfm_jax.convert vgg19-dcbb9e9d.pth --arch vgg19_features --out vgg19.msgpack
  python train.py --config configs/esrgan_x4.py --config.task.vgg_weights=vgg19.msgpack
SFM (the paper's central mode): add --config.task.sfm_rate=0.5.
"""

from sfm_jax.config_base import adversarial_sr_config


def get_config():
  c = adversarial_sr_config("rrdb", 4, 1, "vgg_discriminator")
  c.task.update({"pixel_weight": 0.01, "perceptual_weight": 1.0, "adversarial_weight": 0.005,
                 "ragan_reduction": "mean"})
  c.optim.weight_decay = 1e-5
  c.critics.discriminator.optim.weight_decay = 1e-5
  return c

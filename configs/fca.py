"""Frequency Consistent Adaptation (Ji et al., AAAI 2021), as the CENG501 reproduction
(CENG501-Projects/CENG501-Spring2022, `Project_Cengiz/train.py`) trains it: DIV2K HR halved
(the DSGAN clean-up), 512×512 source patches, batch 4, G / FDC / wavelet D each with Adam 1e-4
(β 0.5 / 0.999) on the one loss 1·L_FDC + 0.001·L_WD; curriculum scale 3.5 then 1.2 after half
the steps; lr constant for half the steps, then linearly to 0 (the student's 250 + 250 epochs of
200 steps).

  python train.py --config configs/fca.py --workdir runs/fca
  python eval.py --task fca --config configs/fca.py --workdir runs/fca --dataset FOLDER \
      --output runs/fca/pairs        # adapted LR/HR pairs + frequency-density plot
The student's element-wise "kernel": --config.model.kwargs.kernel_mode=multiply.
"""

import ml_collections

from sfm_jax.config_base import base_config, critic_model, task_config


def get_config():
  c = base_config("fca_generator", channels=3, kernel_mode="convolve", kernel_size=13)
  c.data.source = "tfds:div2k/bicubic_x4:train"
  c.data.val_source = "tfds:div2k/bicubic_x4:validation"
  c.data.patch_size = c.data.stride = 512
  c.data.scales = (0.5,)
  c.task = task_config("fca", switch_step=50_000)  # fields: tasks.fca.FCATask
  c.critics = ml_collections.ConfigDict()
  for name, model in (("fdc", "fca_fdc"), ("wd", "fca_wavelet_d")):
    c.critics[name] = ml_collections.ConfigDict({
        "model": critic_model(model, channels=3, nf=64),
        "optim": {"learning_rate": c.optim.get_ref("learning_rate")}})
  c.optim.learning_rate = 1e-4
  c.optim.b1, c.optim.b2 = 0.5, 0.999
  c.optim.schedule = "linear_to_zero"
  c.optim.decay_steps = (50_000, 100_000)
  c.train.batch_size = 4
  c.train.steps = 100_000
  c.train.eval_every = c.train.checkpoint_every = 5_000
  c.eval.max_val_images = 10
  return c

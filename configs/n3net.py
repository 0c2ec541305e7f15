"""N3Net (Plötz & Roth 2018) as SFM's release trains it, without SFM (the "regular" model).

The release: majedelhelou/SFM `Denoising/N3Net/main.py` (arguments) and `experiment.py` (data,
loss, optimiser, schedule), with the network of visinf/n3net `src_denoising/models/`; its runs
are `Denoising/N3Net/results_gaussian_denoising/0002-` (this config) and `0003-` (SFM,
configs/n3net_sfm.py). docs/n3net.md has the release's BSD68 results and the deviations.
"""

from sfm_jax.config_base import bsd400_config

# `--batchsize 32`; an epoch is 400 images × `--trainsetiters 128` / 32 = 1,600 steps.
STEPS_PER_EPOCH = 1_600
# The released results evaluate the epoch-50 checkpoint (`--eval_epoch 50`): epochs 0–50.
EPOCHS = 51


def get_config():
  c = bsd400_config("n3net")  # the network: main.py's defaults, N3Net's constructor defaults
  # experiment.py trains on random 80×80 crops (`--patchsize 80`) of the 400 BSDS500 train+test
  # images, turned by RandomOrientation90 + RandomVerticalFlip, no rescaling: a stream of
  # random crops (point data.source at BSDS500 train+test for the release's full-size images).
  c.data.pipeline = "stream"
  c.data.patch_size = 80
  c.data.scales = (1.0,)
  c.train.batch_size = 32
  c.train.steps = EPOCHS * STEPS_PER_EPOCH  # 81,600
  # Blind σ ~ U(0, 55) per image (`--noise_max 55`, data_preprocessing_Blind_SFM): the task's
  # default sigma_range.
  c.task.sigma_range = (0.0, 55.0)
  # Adam(lr 1e-3, β 0.9/0.999, eps 1e-8), lr × 10^(−epoch/10) set at each epoch start
  # (learning_rate_decay: 10^(−5·epoch/50)).
  c.optim.learning_rate = 1e-3
  c.optim.decay_epochs = ()
  c.optim.decay_steps = tuple(STEPS_PER_EPOCH * e for e in range(1, EPOCHS))
  c.optim.decay_factor = 10 ** -0.1
  # PyTorch L2 weight decay 1e-4 on a loss of ½·Σ(out − clean)²·1600/80² per image, batch mean:
  # a quarter of this repository's Σ(out − clean)²/2B, so, Adam being scale-invariant, 4e-4 here
  # (the original exempts biases; here every parameter decays).
  c.optim.weight_decay = 4e-4
  c.train.eval_every = STEPS_PER_EPOCH
  c.train.checkpoint_every = STEPS_PER_EPOCH
  # The release tests on BSDS500 val68 (BSD68) at σ = 10, 20, …, 100, noisy clamped to [0, 1].
  c.eval.sigmas = tuple(range(10, 101, 10))
  return c

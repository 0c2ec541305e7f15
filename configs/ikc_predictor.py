"""IKC stage 2: the kernel Predictor (LR -> code), L2, 5,000 steps of Adam 1e-4. Validation runs
the trained SFTMD on the predicted codes, so it needs stage 1's weights:

  python train.py --config configs/ikc_predictor.py --workdir runs/ikc_predictor \
      --config.task.sftmd_weights=runs/ikc_sftmd/weights.msgpack
"""

from sfm_jax.config_base import ikc_config


def get_config():
  return ikc_config("predictor")

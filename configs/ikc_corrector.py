"""IKC stage 3: the Corrector, trained with SFTMD and the Predictor frozen: on every batch the
Predictor's code is corrected 7 times, est <- Corrector(SFTMD(LR, est), est), each step one Adam
update (1e-4) on ‖est − true code‖². 5,000 batches (the release leaves the count unstated).

  python train.py --config configs/ikc_corrector.py --workdir runs/ikc_corrector \
      --config.task.sftmd_weights=runs/ikc_sftmd/weights.msgpack \
      --config.task.predictor_weights=runs/ikc_predictor/weights.msgpack
"""

from sfm_jax.config_base import ikc_config


def get_config():
  return ikc_config("corrector")

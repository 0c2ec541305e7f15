"""Train a restoration model: python train.py --config configs/X.py --workdir DIR [--config.a.b=v].

Resumes from the latest checkpoint in --workdir. The logic lives in sfm_jax.train.loop.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from sfm_jax import xla_cpu
from sfm_jax.cli import config_value, parse_flags, report_user_errors

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file, e.g. "
                                          "configs/quickstart.py.", lock_config=True)
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Multi-host: call "
                                 "jax.distributed.initialize() first (one process per host).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, logs and weights go here "
                               "(default: runs/<config name>).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # library INFO logs off; --verbosity=0 shows them
  from sfm_jax.cli import default_workdir
  from sfm_jax.train.loop import train_and_evaluate

  if flags.FLAGS["config"].value is None and not flags.FLAGS["config"].present:
    raise app.UsageError("pass --config, e.g. --config configs/quickstart.py")
  config_path = config_flags.get_config_filename(flags.FLAGS["config"])
  if _DISTRIBUTED.value:
    import jax

    jax.distributed.initialize()
  with report_user_errors():
    train_and_evaluate(config_value(_CONFIG), _WORKDIR.value or default_workdir(config_path))


if __name__ == "__main__":
  xla_cpu.enable()  # YNNPACK convolutions on CPU; before JAX starts (SFM_JAX_YNNPACK=0: off)
  sys.exit(app.run(main, flags_parser=parse_flags))

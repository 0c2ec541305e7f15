"""Train a restoration model: python train.py --config configs/X.py --workdir DIR [--config.a.b=v].

Resumes from the latest checkpoint in --workdir. The logic lives in sfm_jax.train.loop.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from sfm_jax import cli, xla_cpu

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file, e.g. "
                                          "configs/quickstart.py.", lock_config=True)
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Multi-host: one process per host, joined "
                                 "by jax.distributed.initialize (the cluster is detected when "
                                 "the three flags below are absent).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "--distributed: HOST:PORT of "
                                   "process 0, which binds to exactly this address.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "--distributed: how many processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "--distributed: this process's index.")
_FORCE_RESUME = flags.DEFINE_bool("force_resume", False, "Resume a workdir whose recorded "
                                  "config differs from --config (beyond run length and logging).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, logs and weights go here "
                               "(default: runs/<config name>).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  cli.quiet_library_logs()
  from sfm_jax.train.loop import train_and_evaluate  # after the logs are quietened

  if flags.FLAGS["config"].value is None and not flags.FLAGS["config"].present:
    raise app.UsageError("pass --config, e.g. --config configs/quickstart.py")
  config_path = config_flags.get_config_filename(flags.FLAGS["config"])
  with cli.report_user_errors():
    config = cli.config_value(_CONFIG)
    if _DISTRIBUTED.value:
      cli.start_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    workdir = _WORKDIR.value or cli.default_workdir(config_path)
    train_and_evaluate(config, workdir, force_resume=_FORCE_RESUME.value)


if __name__ == "__main__":
  xla_cpu.enable()  # YNNPACK convolutions on CPU; before JAX starts (SFM_JAX_YNNPACK=0: off)
  cli.quiet_library_logs()
  sys.exit(app.run(main, flags_parser=cli.parse_flags))

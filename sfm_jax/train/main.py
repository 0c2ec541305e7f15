"""The train.py program (also the `sfm-train` console script)."""


import sys

from absl import app, flags
from ml_collections import config_flags

from sfm_jax import cli


def define_flags() -> dict[str, flags.FlagHolder]:
  """The program's flags, defined when it runs (importing this module defines none)."""
  return {
      "config": config_flags.DEFINE_config_file(
          "config", None, "Experiment config file, e.g. configs/quickstart.py.",
          lock_config=True),
      "distributed": flags.DEFINE_bool(
          "distributed", False, "Multi-host: one process per host, joined by "
          "jax.distributed.initialize (the cluster is detected when the three flags below are "
          "absent)."),
      "coordinator_address": flags.DEFINE_string(
          "coordinator_address", None, "--distributed: HOST:PORT of process 0, which binds to "
          "exactly this address."),
      "num_processes": flags.DEFINE_integer("num_processes", None,
                                            "--distributed: how many processes."),
      "process_id": flags.DEFINE_integer("process_id", None,
                                         "--distributed: this process's index."),
      "force_resume": flags.DEFINE_bool(
          "force_resume", False, "Resume a workdir whose recorded config differs from --config "
          "(beyond run length and logging)."),
      "workdir": flags.DEFINE_string("workdir", None, "Checkpoints, logs and weights go here "
                                     "(default: runs/<config name>)."),
  }


def main(argv, flag: dict[str, flags.FlagHolder]):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  cli.quiet_library_logs()
  from sfm_jax.train.loop import train_and_evaluate  # after the logs are quietened
  from sfm_jax.train.preemption import Interrupted

  if flags.FLAGS["config"].value is None and not flags.FLAGS["config"].present:
    raise app.UsageError("pass --config, e.g. --config configs/quickstart.py")
  config_path = config_flags.get_config_filename(flags.FLAGS["config"])
  with cli.report_user_errors():
    config = cli.config_value(flag["config"])
    if flag["distributed"].value:
      cli.start_distributed(flag["coordinator_address"].value, flag["num_processes"].value,
                            flag["process_id"].value)
    workdir = flag["workdir"].value or cli.default_workdir(config_path)
    try:
      train_and_evaluate(config, workdir, force_resume=flag["force_resume"].value)
    except Interrupted as stop:
      print(stop, file=sys.stderr)
      sys.exit(stop.exit_status)


def run():
  """`python train.py` and the `sfm-train` console script."""
  cli.run_program(main, define_flags)


if __name__ == "__main__":
  run()

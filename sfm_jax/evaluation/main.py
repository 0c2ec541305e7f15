"""The eval.py program (also the `sfm-eval` console script); its usage is eval.py's docstring."""

import importlib.util
import pathlib

from absl import app, flags
from ml_collections import config_flags

from sfm_jax import cli

_DEFAULT_CONFIG = importlib.util.find_spec("sfm_jax.eval_config").origin


def define_flags() -> dict[str, flags.FlagHolder]:
  """The program's flags, defined when it runs (importing this module defines none)."""
  return {
      "config": config_flags.DEFINE_config_file(
          "config", _DEFAULT_CONFIG, "Experiment config (with --workdir), or only its eval "
          "fields (default: sfm_jax/eval_config.py, filled from the weights file).",
          lock_config=True),
      "workdir": flags.DEFINE_string("workdir", None, "Training workdir whose checkpoint to "
                                     "load."),
      "step": flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest)."),
      "weights": flags.DEFINE_string("weights", None, "A weights file or a pretrained name "
                                     "(sfm:dncnn_b, ...) instead of --config/--workdir."),
      "dataset": flags.DEFINE_string("dataset", "builtin", "Image folder, 'builtin' (held-out "
                                     "sample photos) or 'tfds:NAME[:SPLIT]'."),
      "output": flags.DEFINE_string("output", None, "Report folder (default: WORKDIR/eval or "
                                    "eval/)."),
      "save_images": flags.DEFINE_bool("save_images", False, "Also write the outputs and a few "
                                       "side-by-side strips (OUT/images, OUT/strips)."),
      "task": flags.DEFINE_enum("task", "auto", ["auto", "denoise", "sr", "ikc", "fca", "fmd"],
                                "What to evaluate (auto: from the config or the weights file)."),
      "bicubic": flags.DEFINE_bool("bicubic", False, "SR: evaluate plain bicubic upscaling (no "
                                   "model) at --config.eval.scale."),
      "compare": flags.DEFINE_list("compare", [], "Earlier eval.py output folders whose models "
                                   "join this one in the plot (denoising: OUT/psnr_vs_sigma.png; "
                                   "SR: OUT/perception_distortion.png, PSNR vs NIQE)."),
      "ikc_weights": flags.DEFINE_list("ikc_weights", [], "IKC: the SFTMD, Predictor and "
                                       "Corrector weights files, comma-separated."),
  }


def main(argv, flag: dict[str, flags.FlagHolder]):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  cli.quiet_library_logs()
  unfinished = ("eval.py writes its reports when it has scored every image, so none was "
                "written; rerun the command to evaluate.")
  with cli.report_user_errors(), cli.report_interrupt(unfinished):
    from sfm_jax.evaluation.runs import evaluate  # after the logs are quietened

    config = cli.config_value(flag["config"])
    value = {name: holder.value for name, holder in flag.items() if name != "config"}
    evaluate(config, given_config=flags.FLAGS["config"].present,
             overrides=config_flags.get_override_values(flags.FLAGS["config"]),
             task=value["task"], workdir=value["workdir"], step=value["step"],
             weights=value["weights"], ikc_weights=value["ikc_weights"],
             bicubic=value["bicubic"], dataset=value["dataset"],
             save_images=value["save_images"], compare=value["compare"],
             output=pathlib.Path(value["output"] or pathlib.Path(value["workdir"] or ".")
                                 / "eval"))


def run():
  """`python eval.py` and the `sfm-eval` console script."""
  cli.run_program(main, define_flags)


if __name__ == "__main__":
  run()

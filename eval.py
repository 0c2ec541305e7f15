"""Evaluate a denoiser (SFM test protocol), a super-resolver, IKC or an FCA generator.

  python eval.py --config configs/X.py --workdir DIR --dataset FOLDER
  python eval.py --weights FILE.msgpack --dataset FOLDER --config.eval.sigmas=15,25,50
  python eval.py --task sr --bicubic --config.eval.scale=4 --dataset Set5   # bicubic baseline
  python eval.py --weights W --dataset Set14 --config.eval.blur_sigmas=0.2,1,2,3,4
  python eval.py --weights W2 --dataset Set14 --output B --compare A   # PSNR-NIQE plot of A and B
  python eval.py --task ikc --ikc_weights SFTMD,PREDICTOR,CORRECTOR --dataset FOLDER \
      --config.eval.blur_sigmas=1.8,2.6,3.2
  python eval.py --task fca --config configs/fca.py --workdir DIR --dataset FOLDER --output OUT

How images are degraded and scored is `config.eval` (`sfm_jax/config_base.py:eval_fields`):
the --config file's, or for --weights runs without --config the eval fields saved in the weights
file, each overridable as --config.eval.x=value. Denoising writes OUT/results.csv (image, sigma,
psnr, ssim, noisy_psnr, dct_low_mse, dct_high_mse); SR one row per image and blur σ (PSNR, SSIM,
NIQE, and the same for bicubic) and OUT/perception_distortion.png; both write
OUT/summary.json. The protocols live in sfm_jax.evaluation.
"""

import importlib.util
import pathlib
import sys

from absl import app, flags
from ml_collections import config_flags

from sfm_jax import cli, xla_cpu

_DEFAULT_CONFIG = importlib.util.find_spec("sfm_jax.eval_config").origin
_CONFIG = config_flags.DEFINE_config_file(
    "config", _DEFAULT_CONFIG, "Experiment config (with --workdir), or only its eval fields "
    "(default: sfm_jax/eval_config.py, filled from the weights file).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir whose checkpoint to load.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_WEIGHTS = flags.DEFINE_string("weights", None, "A weights file instead of --config/--workdir.")
_DATASET = flags.DEFINE_string("dataset", "builtin", "Image folder, 'builtin' (held-out sample "
                               "photos) or 'tfds:NAME[:SPLIT]'.")
_OUTPUT = flags.DEFINE_string("output", None, "Report folder (default: WORKDIR/eval or eval/).")
_SAVE_IMAGES = flags.DEFINE_bool("save_images", False, "Denoising: also write the outputs.")
_TASK = flags.DEFINE_enum("task", "auto", ["auto", "denoise", "sr", "ikc", "fca"],
                          "What to evaluate (auto: from the config or the weights file).")
_BICUBIC = flags.DEFINE_bool("bicubic", False, "SR: evaluate plain bicubic upscaling (no "
                             "model) at --config.eval.scale.")
_COMPARE = flags.DEFINE_list("compare", [], "SR: earlier eval.py output folders whose models "
                             "join this one in OUT/perception_distortion.png (PSNR vs NIQE).")
_IKC_WEIGHTS = flags.DEFINE_list("ikc_weights", [], "IKC: the SFTMD, Predictor and Corrector "
                                 "weights files, comma-separated.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  cli.quiet_library_logs()
  with cli.report_user_errors():
    from sfm_jax.evaluation.runs import evaluate  # after the logs are quietened

    config = cli.config_value(_CONFIG)
    evaluate(config, given_config=flags.FLAGS["config"].present,
             overrides=config_flags.get_override_values(flags.FLAGS["config"]),
             task=_TASK.value, workdir=_WORKDIR.value, step=_STEP.value,
             weights=_WEIGHTS.value, ikc_weights=_IKC_WEIGHTS.value, bicubic=_BICUBIC.value,
             dataset=_DATASET.value, save_images=_SAVE_IMAGES.value, compare=_COMPARE.value,
             output=pathlib.Path(_OUTPUT.value or pathlib.Path(_WORKDIR.value or ".") / "eval"))


if __name__ == "__main__":
  xla_cpu.enable()  # YNNPACK convolutions on CPU; before JAX starts (SFM_JAX_YNNPACK=0: off)
  cli.quiet_library_logs()
  sys.exit(app.run(main, flags_parser=cli.parse_flags))

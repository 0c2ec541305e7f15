"""Evaluate a denoiser (SFM test protocol) or a super-resolver on an image folder.

  python eval.py --config configs/X.py --workdir DIR --dataset FOLDER [--sigmas 15,25,50]
  python eval.py --weights FILE.msgpack --dataset FOLDER --output OUT
  python eval.py --task sr --scale 4 --bicubic --dataset Set5            # bicubic baseline
  python eval.py --task sr --scale 2 --weights W --dataset Set14 --blur_sigmas 0.2,1,2,3,4
  python eval.py --task ikc --ikc_weights SFTMD,PREDICTOR,CORRECTOR --dataset FOLDER \
      --blur_sigmas 1.8,2.6,3.2
  python eval.py --task fca --config configs/fca.py --workdir DIR --dataset FOLDER --output OUT

Denoising writes OUT/results.csv (image, sigma, psnr, ssim, noisy_psnr, dct_low_mse,
dct_high_mse); SR writes one row per image and blur σ; both write OUT/summary.json and print the
means. FCA writes adapted LR/HR pairs (OUT/LR, OUT/HR) and OUT/frequency_density.png. The
logic lives in sfm_jax.evaluate and sfm_jax.tasks.
"""

import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from sfm_jax import xla_cpu
from sfm_jax.cli import config_value, parse_flags, report_user_errors

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config (with --workdir).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir whose checkpoint to load.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_WEIGHTS = flags.DEFINE_string("weights", None, "A weights file instead of --config/--workdir.")
_DATASET = flags.DEFINE_string("dataset", "builtin", "Image folder, 'builtin' (held-out sample "
                               "photos) or 'tfds:NAME[:SPLIT]'.")
_SIGMAS = flags.DEFINE_list("sigmas", [str(s) for s in range(5, 101, 5)],
                            "Noise levels on the 0–255 scale.")
_OUTPUT = flags.DEFINE_string("output", None, "Report folder (default: WORKDIR/eval or eval/).")
_SEED = flags.DEFINE_integer("seed", 0, "Noise seed.")
_NO_CLIP = flags.DEFINE_bool("no_clip_noisy", False, "Do not clamp clean + noise to [0, 1].")
_ENSEMBLE = flags.DEFINE_bool("self_ensemble", False, "Average the ×8 dihedral outputs.")
_TILE = flags.DEFINE_integer("tile", 0, "Tile size for large images (0: whole images).")
_TILE_OVERLAP = flags.DEFINE_integer("tile_overlap", 32, "Overlap between tiles.")
_SAVE_IMAGES = flags.DEFINE_bool("save_images", False, "Also write the denoised PNGs.")
_TASK = flags.DEFINE_enum("task", "denoise", ["denoise", "sr", "ikc", "fca"],
                              "What to evaluate.")
_SCALE = flags.DEFINE_integer("scale", 4, "SR: the scale factor (LR = MATLAB bicubic 1/scale).")
_BICUBIC = flags.DEFINE_bool("bicubic", False, "SR: evaluate plain bicubic upscaling (no model).")
_RGB = flags.DEFINE_bool("rgb", False, "SR: score RGB instead of the Y channel.")
_BLUR_SIGMAS = flags.DEFINE_list("blur_sigmas", ["0"], "SR: Gaussian blur σ (pixels) applied "
                                 "before downsampling; several make a kernel sweep, e.g. "
                                 "0.2,1,2,3,4 (0: plain bicubic).")
_KERNEL_SIZE = flags.DEFINE_integer("kernel_size", 21, "SR: blur kernel size (odd).")
_IKC_WEIGHTS = flags.DEFINE_list("ikc_weights", [], "IKC: the SFTMD, Predictor and Corrector "
                                 "weights files, comma-separated.")
_CORRECTIONS = flags.DEFINE_integer("corrections", 7, "IKC: Corrector steps.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  with report_user_errors():
    run()


def load_model():
  """(model, name, kwargs, origin) from --weights or --config/--workdir."""
  from sfm_jax.weights import load_weights

  if _WEIGHTS.value:
    model, name, kwargs = load_weights(_WEIGHTS.value)
    return model, name, kwargs, _WEIGHTS.value
  if flags.FLAGS["config"].present and _WORKDIR.value:
    from sfm_jax.train.loop import restore_model

    config = config_value(_CONFIG)
    model, step = restore_model(config, _WORKDIR.value, _STEP.value)
    origin = f"{_WORKDIR.value} (step {step})"
    return model, config.model.name, config.model.kwargs.to_dict(), origin
  raise ValueError("say which model to evaluate: --weights FILE, or --config C --workdir DIR"
                   " (or --task sr --bicubic for the bicubic baseline).")


def output_dir() -> pathlib.Path:
  if _OUTPUT.value:
    return pathlib.Path(_OUTPUT.value)
  return pathlib.Path(_WORKDIR.value or ".") / "eval"


def numbers(flag, example: str) -> tuple[float, ...]:
  try:
    return tuple(float(s) for s in flag.value)
  except ValueError:
    raise ValueError(f"--{flag.name}={','.join(flag.value)} must be numbers, e.g. "
                     f"--{flag.name} {example}.") from None


def run_sr():
  from sfm_jax.data.images import load_source
  from sfm_jax.evaluate import evaluate_sr, format_sr_table, write_sr_reports
  from sfm_jax.inference import make_upscaler

  blur_sigmas = numbers(_BLUR_SIGMAS, "0.2,1,2,3,4")
  if _BICUBIC.value:
    upscale, name, channels, origin = None, "bicubic", 3, "MATLAB imresize"
  else:
    model, name, kwargs, origin = load_model()
    channels = kwargs.get("channels", 3)
    upscale = make_upscaler(model, tile=_TILE.value, tile_overlap=_TILE_OVERLAP.value,
                            self_ensemble=_ENSEMBLE.value)
  images = load_source(_DATASET.value, "val", channels)
  rows = [row for sigma in blur_sigmas
          for row in evaluate_sr(upscale, images, _SCALE.value, blur_sigma=sigma,
                                 kernel_size=_KERNEL_SIZE.value, y_channel=not _RGB.value,
                                 progress=True)]
  summary = write_sr_reports(output_dir(), rows, _SCALE.value)
  print(f"{name} from {origin} on {_DATASET.value} ({len(images)} images)")
  print(format_sr_table(summary, name, _SCALE.value, rgb=_RGB.value))
  print(f"Per-image results: {output_dir() / 'results.csv'}")


def run_ikc():
  from sfm_jax.data.images import load_source
  from sfm_jax.evaluate import IKC_COLUMNS, evaluate_ikc, format_ikc_table, write_sr_reports
  from sfm_jax.inference import make_apply
  from sfm_jax.tasks.ikc import gaussian_codes
  from sfm_jax.weights import load_weights

  if len(_IKC_WEIGHTS.value) != 3:
    raise ValueError("--task ikc needs --ikc_weights SFTMD,PREDICTOR,CORRECTOR (three weights "
                     "files written by train.py with configs/ikc_*.py).")
  blur_sigmas = numbers(_BLUR_SIGMAS, "1.8,2.6,3.2")
  if min(blur_sigmas) <= 0:
    raise ValueError("IKC restores blurred images: give --blur_sigmas > 0, e.g. 1.8,2.6,3.2 "
                     "(IKC's Gaussian8 range) or 0.2,1,2,3,4.")
  (sftmd, _, kwargs), (predictor, _, _), (corrector, _, _) = (
      load_weights(path) for path in _IKC_WEIGHTS.value)
  scale, code_len = kwargs.get("scale", 4), kwargs.get("code_len", 10)
  images = load_source(_DATASET.value, "val", kwargs.get("channels", 3))
  networks = [make_apply(m) for m in (sftmd, predictor, corrector)]
  codes = lambda sigma: gaussian_codes([sigma], _KERNEL_SIZE.value, code_len)  # noqa: E731
  rows = [row for sigma in blur_sigmas
          for row in evaluate_ikc(*networks, codes, images, scale, blur_sigma=sigma,
                                  corrections=_CORRECTIONS.value, kernel_size=_KERNEL_SIZE.value,
                                  y_channel=not _RGB.value, progress=True)]
  summary = write_sr_reports(output_dir(), rows, scale, IKC_COLUMNS)
  print(f"IKC from {', '.join(_IKC_WEIGHTS.value)} on {_DATASET.value} ({len(images)} images)")
  print(format_ikc_table(summary, scale, _CORRECTIONS.value))
  print(f"Per-image results: {output_dir() / 'results.csv'}")


def run_fca():
  import json

  from sfm_jax.data.images import load_source
  from sfm_jax.inference import make_apply
  from sfm_jax.tasks.fca import FCATask, plot_frequency_density, write_adapted_pairs

  model, name, kwargs, origin = load_model()
  if name != "fca_generator":
    raise ValueError(f"--task fca needs an FCA generator (configs/fca.py), not {name!r}.")
  images = load_source(_DATASET.value, "val", kwargs.get("channels", 3))
  adapt, output, factor = make_apply(model), output_dir(), kwargs.get("scale", 4)
  count = write_adapted_pairs(adapt, images, output, factor)
  task = FCATask(factor=factor)
  curves = task.density_curves(adapt, images)
  plot_frequency_density(curves, output / "frequency_density.png")
  gaps = task.density_gaps(adapt, images)
  (output / "summary.json").write_text(json.dumps(
      {"fd_gap_adapted": gaps["adapted"], "fd_gap_bicubic": gaps["bicubic"],
       "curves": {k: v.tolist() for k, v in curves.items()}}, indent=1))
  print(f"FCA generator from {origin}: {count} adapted LR/HR pairs in {output}/LR, {output}/HR")
  print(f"Frequency-density gap to the domain (mean |Δ log|): adapted {gaps['adapted']:.3f}, "
        f"bicubic {gaps['bicubic']:.3f}; plot: {output / 'frequency_density.png'}")


def run():
  if _TASK.value == "sr":
    return run_sr()
  if _TASK.value == "ikc":
    return run_ikc()
  if _TASK.value == "fca":
    return run_fca()
  from sfm_jax.data.images import load_source
  from sfm_jax.evaluate import Protocol, evaluate_images, format_table, summarize, write_reports
  from sfm_jax.inference import SIZE_MULTIPLE, make_denoiser

  model, name, kwargs, origin = load_model()
  sigmas = numbers(_SIGMAS, "15,25,50")
  images = load_source(_DATASET.value, "val", kwargs.get("channels", 1))
  protocol = Protocol(sigmas=sigmas, clip_noisy=not _NO_CLIP.value, seed=_SEED.value,
                      self_ensemble=_ENSEMBLE.value, tile=_TILE.value,
                      tile_overlap=_TILE_OVERLAP.value)
  output = output_dir()
  rows = evaluate_images(make_denoiser(model), images, protocol, SIZE_MULTIPLE.get(name, 1),
                         output / "images" if _SAVE_IMAGES.value else None, progress=True)
  summary = summarize(rows)
  write_reports(output, rows, summary, protocol)
  print(f"{name} from {origin} on {_DATASET.value} ({len(images)} images)")
  print(format_table(summary, protocol))
  print(f"Per-image results: {output / 'results.csv'}")


if __name__ == "__main__":
  xla_cpu.enable()  # YNNPACK convolutions on CPU; before JAX starts (SFM_JAX_YNNPACK=0: off)
  sys.exit(app.run(main, flags_parser=parse_flags))

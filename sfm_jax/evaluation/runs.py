"""What `eval.py` runs once it knows the model and the eval settings: one function per protocol,
each printing its table and writing OUT/results.csv and OUT/summary.json.

`settings` is a `config.eval` (denoising or SR fields, see `config_base.eval_fields`); `images`
are (name, uint8 (H, W, C)) pairs; `source` names the model in the printed header.
"""

from __future__ import annotations

import json
import pathlib

import ml_collections

from sfm_jax import pretrained
from sfm_jax.checks import check_eval_settings, check_writable_folder
from sfm_jax.data.images import load_source
from sfm_jax.evaluation import denoise, ikc, pictures, sr
from sfm_jax.inference import make_apply, make_upscaler
from sfm_jax.models import model_card, set_compute_dtype
from sfm_jax.tasks.fca import FCATask, plot_frequency_density, write_adapted_pairs
from sfm_jax.tasks.ikc import gaussian_codes
from sfm_jax.weights import load_model, load_weights


def _print_report(source: str, dataset: str, images, table: str, output: pathlib.Path):
  print(f"{source} on {dataset} ({len(images)} images)")
  print(table)
  print(f"Per-image results: {output / 'results.csv'}")


def run_denoise(model, card, source: str, settings, images, dataset: str,
                output: pathlib.Path, save_images: bool = False,
                compare: tuple[str, ...] = ()) -> dict:
  """The denoising protocol of `settings` (eval.sigmas, clip_noisy, noise_seed, …), and
  OUT/psnr_vs_sigma.png: the models of the `compare` folders (earlier eval.py outputs) and
  this one, with their differences to the first of them."""
  protocol = denoise.Protocol.from_config(settings)
  rows = denoise.evaluate_images(make_apply(model), images, protocol, card.size_multiple,
                                 output / "images" if save_images else None, progress=True)
  summary = denoise.summarize(rows)
  denoise.write_reports(output, rows, summary, protocol)
  _print_report(source, dataset, images, denoise.format_table(summary, protocol), output)
  curves = {_label(folder): _psnr_by_sigma(folder) for folder in map(pathlib.Path, compare)}
  curves[_label(output, card.name)] = {s: m["psnr"] for s, m in summary.items()}
  pictures.plot_psnr_vs_sigma(curves, output / "psnr_vs_sigma.png")
  print(f"PSNR against σ: {output / 'psnr_vs_sigma.png'}")
  return summary


def _label(folder: pathlib.Path, model_name: str = "") -> str:
  """A run's name in the plots: its output folder's, or the model's for the default eval/."""
  name = folder.resolve().name
  return model_name if model_name and name == "eval" else name


def _psnr_by_sigma(folder: pathlib.Path) -> dict[float, float]:
  """{σ: mean PSNR} of an earlier denoising eval.py output folder."""
  report = json.loads((folder / "summary.json").read_text())
  if "per_sigma" not in report:
    raise ValueError(f"--compare {folder}: its summary.json is not a denoising evaluation; "
                     "compare denoisers with denoisers.")
  return {float(s): m["psnr"] for s, m in report["per_sigma"].items()}


def run_sr(model, name: str, source: str, settings, images, dataset: str,
           output: pathlib.Path, scale: int, blur_sigmas: tuple[float, ...],
           compare: tuple[str, ...] = (), save_images: bool = False) -> dict:
  """The SR protocol at each blur σ; `model` None scores bicubic upscaling alone; `name` heads
  the model's column; `save_images` writes bicubic | output | HR strips (OUT/strips). With
  eval.niqe, also OUT/perception_distortion.png: bicubic, this model
  and the models of the `compare` folders (earlier eval.py outputs) at the first blur σ."""
  upscale = None if model is None else make_upscaler(
      model, tile=settings.tile, tile_overlap=settings.tile_overlap,
      self_ensemble=settings.self_ensemble)
  rows = [row for sigma in blur_sigmas
          for row in sr.evaluate_sr(upscale, images, scale, blur_sigma=sigma,
                                    kernel_size=settings.kernel_size,
                                    y_channel=settings.y_channel, progress=True,
                                    niqe=settings.get("niqe", False),
                                    strip_dir=output / "strips" if save_images else None)]
  summary = sr.write_sr_reports(output, rows, scale)
  table = sr.format_sr_table(summary, name, scale, rgb=not settings.y_channel)
  _print_report(source, dataset, images, table, output)
  if settings.get("niqe", False):
    _plot_perception_distortion(next(iter(summary.values())), name, compare, output)
  return summary


def _plot_perception_distortion(means: dict, name: str, compare, output: pathlib.Path):
  points = {"bicubic": (means["bicubic_psnr"], means["bicubic_niqe"])}
  if name != "bicubic":
    points[f"{name} ({output.name})"] = (means["psnr"], means["niqe"])
  for folder in map(pathlib.Path, compare):
    other = json.loads((folder / "summary.json").read_text())
    if "niqe" not in other:
      raise ValueError(f"{folder}/summary.json has no NIQE; rerun eval.py there with "
                       "--config.eval.niqe=True.")
    points[folder.name] = (other["psnr"], other["niqe"])
  sr.plot_perception_distortion(points, output / "perception_distortion.png")
  print(f"Perception–distortion plot: {output / 'perception_distortion.png'}")


def run_ikc(networks, code_of_sigma, source: str, settings, images, dataset: str,
            output: pathlib.Path, scale: int, blur_sigmas: tuple[float, ...]) -> dict:
  """IKC's test at each blur σ; `networks` = (SFTMD, Predictor, Corrector) modules."""
  if not blur_sigmas or min(blur_sigmas) <= 0:
    raise ValueError("IKC restores blurred images: set --config.eval.blur_sigmas to values > 0, "
                     "e.g. 1.8,2.6,3.2 (IKC's Gaussian8 range) or 0.2,1,2,3,4.")
  applies = [make_apply(network) for network in networks]
  rows = [row for sigma in blur_sigmas
          for row in ikc.evaluate_ikc(*applies, code_of_sigma, images, scale, blur_sigma=sigma,
                                      corrections=settings.corrections,
                                      kernel_size=settings.kernel_size,
                                      y_channel=settings.y_channel, progress=True)]
  summary = sr.write_sr_reports(output, rows, scale, ikc.IKC_COLUMNS)
  table = ikc.format_ikc_table(summary, scale, settings.corrections)
  _print_report(source, dataset, images, table, output)
  return summary


def run_fca(model, source: str, images, output: pathlib.Path, factor: int) -> dict:
  """Adapted LR/HR pairs (OUT/LR, OUT/HR), OUT/frequency_density.png and the density gaps."""
  adapt = make_apply(model)
  count = write_adapted_pairs(adapt, images, output, factor)
  task = FCATask(factor=factor)
  curves = task.density_curves(adapt, images)
  plot_frequency_density(curves, output / "frequency_density.png")
  gaps = task.density_gaps(adapt, images)
  report = {"fd_gap_adapted": gaps["adapted"], "fd_gap_bicubic": gaps["bicubic"],
            "curves": {k: v.tolist() for k, v in curves.items()}}
  (output / "summary.json").write_text(json.dumps(report, indent=1))
  print(f"FCA generator from {source}: {count} adapted LR/HR pairs in {output}/LR, {output}/HR")
  print(f"Frequency-density gap to the domain (mean |Δ log|): adapted {gaps['adapted']:.3f}, "
        f"bicubic {gaps['bicubic']:.3f}; plot: {output / 'frequency_density.png'}")
  return report


def evaluate(config, *, given_config: bool, overrides: dict, task: str = "auto",
             workdir: str | None = None, step: int | None = None, weights: str | None = None,
             ikc_weights=(), bicubic: bool = False, dataset: str = "builtin",
             save_images: bool = False, output: pathlib.Path = pathlib.Path("eval"),
             compare: tuple[str, ...] = ()) -> dict:
  """eval.py's work: resolves the model, the protocol and its settings, then runs it.

  config: the --config file's config (`given_config`), else `sfm_jax/eval_config.py`'s.
  overrides: the --config.x=… values given ({"eval.sigmas": …}); for --weights runs without a
    config they win over the eval fields saved in the weights file, which win over the defaults.
  """
  check_writable_folder(output, "--output folder")
  check_eval_settings(config.eval)
  for folder in compare:
    if not (pathlib.Path(folder) / "summary.json").is_file():
      raise FileNotFoundError(f"--compare {folder}: no summary.json there; give folders that "
                              "eval.py --output wrote.")
  if task == "ikc" or ikc_weights:
    return _evaluate_ikc(config, ikc_weights, dataset, output)
  if bicubic:
    settings = config.eval
    images = load_source(dataset, "val", 3)
    return run_sr(None, "bicubic", "bicubic from MATLAB imresize", settings, images, dataset,
                  output, settings.scale, _blur_sigmas(settings, config, given_config), compare)
  model, card, kwargs, source, metadata = _load_model(config, given_config, workdir, step,
                                                      weights)
  settings = _settings(config, given_config, overrides, metadata)
  check_eval_settings(settings)
  set_compute_dtype(model, settings.get("compute_dtype", "float32"))
  protocol = card.protocol if task == "auto" else task
  images = load_source(dataset, "val", card.channels)
  if protocol == "denoise":
    return run_denoise(model, card, source, settings, images, dataset, output, save_images,
                       compare)
  if protocol == "fca":
    return run_fca(model, source, images, output, kwargs.get("scale", 4))
  if protocol != "sr":
    raise ValueError(f"eval.py scores denoisers, SR networks, IKC and FCA generators; "
                     f"{source} is a {card.role} (protocol {protocol!r}).")
  return run_sr(model, card.name, source, settings, images, dataset, output, card.scale,
                _blur_sigmas(settings, config, given_config), compare, save_images)


def _load_model(config, given_config: bool, workdir, step, weights):
  """(model, card, kwargs, source, metadata) from --weights or --config/--workdir."""
  from sfm_jax.train.loop import restore_model  # the loop pulls in orbax and clu

  if weights:
    weights = pretrained.resolve(weights)
    model, card, stored = load_model(weights)
    return model, card, stored.kwargs, f"{card.name} from {weights}", stored.metadata
  if given_config and workdir:
    model, step = restore_model(config, workdir, step)
    name, kwargs = config.model.name, config.model.kwargs.to_dict()
    return (model, model_card(name, kwargs), kwargs, f"{name} from {workdir} (step {step})",
            {})
  raise ValueError("say which model to evaluate: --weights FILE, or --config C --workdir DIR"
                   " (or --task sr --bicubic for the bicubic baseline).")


def _settings(config, given_config: bool, overrides: dict, metadata: dict):
  """config.eval, filled from the weights file's saved eval fields where the command line did
  not set them (only for runs without --config)."""
  settings = config.eval
  if given_config:
    return settings
  saved = {k: v for k, v in metadata.get("eval", {}).items()
           if k in settings and f"eval.{k}" not in overrides}
  settings = ml_collections.ConfigDict(settings.to_dict())
  for key, value in saved.items():
    settings[key] = tuple(value) if isinstance(value, list) else value
  return settings


def _blur_sigmas(settings, config, given_config: bool) -> tuple[float, ...]:
  """eval.blur_sigmas, else the middle of the training blur range (a config's), else none."""
  if settings.blur_sigmas:
    return tuple(float(s) for s in settings.blur_sigmas)
  if given_config and "blur_sigma_range" in config.get("task", {}):
    low, high = config.task.blur_sigma_range
    return (0.5 * (low + high),)
  return (0.0,)


def _evaluate_ikc(config, ikc_weights, dataset: str, output: pathlib.Path) -> dict:
  if len(ikc_weights) != 3:
    raise ValueError("--task ikc needs --ikc_weights SFTMD,PREDICTOR,CORRECTOR (three weights "
                     "files written by train.py with configs/ikc_*.py).")
  (sftmd, _, kwargs), (predictor, _, _), (corrector, _, _) = (
      load_weights(path) for path in ikc_weights)
  settings = config.eval
  code_len = kwargs.get("code_len", 10)
  codes = lambda sigma: gaussian_codes([sigma], settings.kernel_size, code_len)  # noqa: E731
  images = load_source(dataset, "val", kwargs.get("channels", 3))
  return run_ikc((sftmd, predictor, corrector), codes, f"IKC from {', '.join(ikc_weights)}",
                 settings, images, dataset, output, kwargs.get("scale", 4),
                 tuple(float(s) for s in settings.blur_sigmas))

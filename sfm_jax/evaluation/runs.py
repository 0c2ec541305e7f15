"""What `eval.py` runs: it resolves the model (a weights file or a training workdir), its card
and the evaluation settings, then runs the evaluator of the card's protocol
(`sfm_jax.evaluation`), which prints its table and writes OUT/results.csv and OUT/summary.json.
"""

from __future__ import annotations

import pathlib

import ml_collections

from sfm_jax import pretrained
from sfm_jax.checks import check_eval_settings, check_writable_folder
from sfm_jax.data.images import load_source
from sfm_jax.evaluation import (
    IKCEvaluator,
    SREvaluator,
    check_image_sizes,
    fmd,
    make_evaluator,
)
from sfm_jax.inference import make_apply
from sfm_jax.models import Compute, model_card
from sfm_jax.weights import load_model, read_stored


def evaluate(config, *, given_config: bool, overrides: dict, task: str = "auto",
             workdir: str | None = None, step: int | None = None, weights: str | None = None,
             ikc_weights=(), bicubic: bool = False, dataset: str = "builtin",
             save_images: bool = False, output: pathlib.Path = pathlib.Path("eval"),
             compare: tuple[str, ...] = ()) -> dict:
  """eval.py's work: resolves the model, the protocol and its settings, then runs it.

  config: the --config file's config (`given_config`), else `sfm_jax/eval_config.py`'s.
  overrides: the --config.x=… values given ({"eval.sigmas": …}); for --weights runs without a
    config they win over the eval fields saved in the weights file, which win over the defaults.
  task: the protocol ("auto": the model card's).
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
    settings = ml_collections.ConfigDict(config.eval.to_dict())
    settings.update(blur_sigmas=_blur_sigmas(settings, config, given_config), label="bicubic")
    images = load_source(dataset, "val", 3)
    check_image_sizes(images, SREvaluator(settings).min_side, dataset)
    return SREvaluator(settings).run(None, images, output, "bicubic from MATLAB imresize",
                                     dataset, compare=compare)
  metadata = _saved_metadata(weights)
  settings = _settings(config, given_config, overrides, metadata)
  check_eval_settings(settings)
  compute = Compute.from_settings(settings.get("compute_dtype", "float32"))
  model, card, source = _load_model(config, given_config, workdir, step, weights, compute)
  protocol = metadata.get("protocol", card.protocol) if task == "auto" else task
  if protocol in ("", "kernel", "ikc"):
    raise ValueError(f"eval.py scores denoisers, SR networks, IKC and FCA generators; {source} "
                     f"is a {card.role.replace('_', ' ')}" + (" (IKC: --task ikc --ikc_weights "
                     "SFTMD,PREDICTOR,CORRECTOR)." if protocol == "ikc" else "."))
  if protocol == "sr":
    settings.update(scale=card.scale, blur_sigmas=_blur_sigmas(settings, config, given_config))
  images = (fmd.load_test_set(dataset) if protocol == "fmd"
            else load_source(dataset, "val", card.channels))
  evaluator = make_evaluator(protocol, settings, card)
  if protocol != "fmd":  # FMD's crops are fixed by its loader
    check_image_sizes(images, evaluator.min_side, dataset)
  return evaluator.run(make_apply(model), images, output, source, dataset,
                       save_images=save_images, compare=compare)


def _saved_metadata(weights: str | None) -> dict:
  """The metadata of the --weights file (its task and eval fields), {} without one."""
  return read_stored(pretrained.resolve(weights)).metadata if weights else {}


def _load_model(config, given_config: bool, workdir, step, weights, compute: Compute):
  """(model, card, source) from --weights or --config/--workdir, computing as `compute`."""
  from sfm_jax.train.checkpoints import restore_model  # pulls in orbax

  if weights:
    weights = pretrained.resolve(weights)
    model, card, _ = load_model(weights, compute)
    return model, card, f"{card.name} from {weights}"
  if given_config and workdir:
    model, step = restore_model(config, workdir, step, compute)
    name = config.model.name
    card = model_card(name, config.model.kwargs.to_dict())
    return model, card, f"{name} from {workdir} (step {step})"
  raise ValueError("say which model to evaluate: --weights FILE, or --config C --workdir DIR"
                   " (or --task sr --bicubic for the bicubic baseline).")


def _settings(config, given_config: bool, overrides: dict, metadata: dict):
  """config.eval, filled from the weights file's saved eval fields where the command line did
  not set them (only for runs without --config)."""
  settings = ml_collections.ConfigDict(config.eval.to_dict())
  if given_config:
    return settings
  saved = {k: v for k, v in metadata.get("eval", {}).items()
           if k in settings and f"eval.{k}" not in overrides}
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
  (sftmd, card, stored), (predictor, _, _), (corrector, _, _) = (
      load_model(path) for path in ikc_weights)
  evaluator = IKCEvaluator(config.eval, card.scale, stored.kwargs.get("code_len", 10))
  images = load_source(dataset, "val", card.channels)
  check_image_sizes(images, evaluator.min_side, dataset)
  networks = tuple(make_apply(network) for network in (sftmd, predictor, corrector))
  return evaluator.run(networks, images, output, f"IKC from {', '.join(ikc_weights)}", dataset)

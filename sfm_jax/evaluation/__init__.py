"""The evaluation protocols, one evaluator each, given a predict function (big_vision's
`evaluators/` shape). Validation during training and `eval.py` use the same evaluators:
`validate(predict, images)` scores one setting and returns a `results.ValidationResult`;
`run(predict, images, output, ...)` runs the whole protocol and writes its reports.

- "denoise" (`denoise.DenoiseEvaluator`): the SFM denoising protocol (seeded noise per image and
  σ, clamped input and output, PSNR with peak 1 on whole images, SSIM, DCT low/high-band MSE).
- "sr" (`sr.SREvaluator`): the SR papers' protocol (MATLAB bicubic LR, Y-channel PSNR/SSIM with
  a border crop equal to the scale), an optional Gaussian blur sweep, NIQE.
- "fmd" (`fmd.FMDEvaluator`, eval.py only): the FMD microscopy benchmark of the SFM release's
  Noise2Noise / Noise2Self U-Nets (its dataset is the FMD root folder).
- "ikc" (`ikc.IKCEvaluator`, eval.py only): IKC's test (Predictor, then Corrector steps).
- "fca" (`fca.FCAEvaluator`): frequency-density gaps of an adaptation generator; adapted pairs.
- "kernel" (`kernel.KernelEvaluator`, training only): an estimated blur kernel through a frozen
  SR network.

A model's protocol is on its card (`models.ModelCard.protocol`); a training task names the
protocol that validates it (`tasks.base.Task.protocol`). This package imports no task.
"""

from sfm_jax.errors import DataError
from sfm_jax.evaluation.denoise import DenoiseEvaluator
from sfm_jax.evaluation.fca import FCAEvaluator
from sfm_jax.evaluation.fmd import FMDEvaluator
from sfm_jax.evaluation.ikc import IKCEvaluator
from sfm_jax.evaluation.kernel import KernelEvaluator
from sfm_jax.evaluation.sr import SREvaluator

EVALUATORS = {"denoise": DenoiseEvaluator, "sr": SREvaluator, "fca": FCAEvaluator,
              "fmd": FMDEvaluator, "kernel": KernelEvaluator}


def make_evaluator(protocol: str, settings, card=None):
  """The evaluator of `protocol` with `settings` (a config.eval) for a model with `card`."""
  if protocol not in EVALUATORS:
    raise ValueError(f"no evaluator for protocol {protocol!r}; the protocols are "
                     f"{sorted(EVALUATORS)} (IKC: eval.py --task ikc --ikc_weights ...).")
  return EVALUATORS[protocol](settings, card)


def check_image_sizes(images: list, min_side: int, source: str) -> None:
  """DataError naming the images of `images` [(name, (H, W, C))] from `source` that have a
  side shorter than `min_side` (an evaluator's: SSIM's window, the SR border crop), so that
  training and eval.py stop before any work rather than at the first score."""
  small = [f"{name} ({image.shape[0]}×{image.shape[1]})" for name, image in images
           if min(image.shape[:2]) < min_side]
  if small:
    listed = ", ".join(small[:5]) + (f" and {len(small) - 5} more" if len(small) > 5 else "")
    verb, them = ("is", "it") if len(small) == 1 else ("are", "them")
    raise DataError(f"in {source}, {listed} {verb} smaller than the {min_side}×{min_side} "
                    "pixels the evaluation protocol scores (SSIM's window, the border crop); "
                    f"remove or replace {them}.")


__all__ = ["EVALUATORS", "DenoiseEvaluator", "FCAEvaluator", "FMDEvaluator", "IKCEvaluator",
           "KernelEvaluator", "SREvaluator", "check_image_sizes", "make_evaluator"]

"""FCA's protocol (Ji et al., AAAI 2021; the CENG501 reproduction's notebook): the frequency
density (`ops.frequency_density`) of the adaptation generator's G(x) and of bicubic x↓factor
against the domain's own patches, and the adapted LR/HR pairs that SR training then uses."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from sfm_jax import ops
from sfm_jax.data.images import center_crop, crop_to_multiple, save_png
from sfm_jax.data.patches import grid_patches
from sfm_jax.results import ValidationResult

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # PIL "L" (ITU-R 601), as the notebook


def luma_255(images: jax.Array) -> jax.Array:
  """(…, H, W, C) in [0, 1] -> (…, H, W) gray on 0–255 (PIL "L" weights; C = 1 passes)."""
  gray = images[..., 0] if images.shape[-1] == 1 else images @ jnp.asarray(LUMA)
  return 255.0 * gray


def density_curves(adapt, images: list, factor: int = 4) -> dict[str, np.ndarray]:
  """Mean frequency-density curves ("notebook" definition, gray 0–255) of G(x) ("adapted"),
  of bicubic x↓factor ("bicubic") and of the images' own Q×Q grid patches ("domain"), over
  `images` ((name, uint8 HWC) pairs) cropped to multiples of 4·factor; Q = the shorter LR
  side."""
  curves = {"adapted": [], "bicubic": [], "domain": []}
  for _, image in images:
    source = source_crop(image, factor)
    x, size = jnp.asarray(source)[None], min(source.shape[:2]) // factor
    lr = {"adapted": adapt(x), "bicubic": ops.imresize(x, scale=1.0 / factor)}
    for name, image_lr in lr.items():
      curves[name].append(ops.frequency_density(luma_255(center_crop(image_lr, size))))
    domain = jnp.asarray(grid_patches(source, size, size))
    curves["domain"].append(ops.frequency_density(luma_255(domain)))
  return {k: np.mean([np.asarray(c) for c in v], axis=0) for k, v in curves.items()}


def density_gaps(adapt, images: list, factor: int = 4) -> dict[str, float]:
  """Mean |log FD(·) − log FD(domain)| of G(x) ("adapted") and bicubic x↓factor."""
  logs = {k: np.log(v) for k, v in density_curves(adapt, images, factor).items()}
  return {k: float(np.mean(np.abs(logs[k] - logs["domain"]))) for k in ("adapted", "bicubic")}


def source_crop(image: np.ndarray, factor: int = 4) -> np.ndarray:
  """uint8 (H, W, C) -> float [0, 1] cropped to multiples of 4·factor (G's size multiple)."""
  multiple = 4 * factor
  if min(image.shape[:2]) < multiple:
    raise ValueError(f"an image of {image.shape[0]}×{image.shape[1]} is smaller than "
                     f"{multiple}×{multiple}; FCA needs larger images.")
  return crop_to_multiple(image, multiple)


def write_adapted_pairs(adapt, images: list, out, factor: int = 4) -> int:
  """For every (name, uint8 HWC) image: OUT/HR/name.png (the image cropped to multiples of
  4·factor) and OUT/LR/name.png (G of it, 8 bits): SR training pairs in the image's domain.
  Returns the number of pairs."""
  for name, image in images:
    hr = source_crop(image, factor)
    stem = pathlib.Path(name).stem
    save_png(pathlib.Path(out) / "HR" / f"{stem}.png", hr)
    save_png(pathlib.Path(out) / "LR" / f"{stem}.png", np.asarray(adapt(jnp.asarray(hr)[None]))[0])
  return len(images)


def plot_frequency_density(curves: dict[str, np.ndarray], path) -> None:
  """A PNG of the frequency-density curves (`density_curves`), log scale."""
  import matplotlib  # only here: plotting is optional and slow to import

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
  labels = {"domain": "real (the domain's own patches)", "bicubic": "bicubic LR",
            "adapted": "FCA adapted LR"}
  for name, label in labels.items():
    axis.semilogy(curves[name], label=label)
  axis.set_xlabel("frequency (high - low - high)")
  axis.set_ylabel("mean |F| on the Nyquist column")
  axis.set_title("Frequency density")
  axis.legend()
  figure.tight_layout()
  figure.savefig(path)
  plt.close(figure)


class FCAEvaluator:
  """Scores an adaptation generator `adapt(x (1, H, W, C)) -> (1, H/f, W/f, C)` by the
  frequency-density gap of its outputs to the domain's patches, against bicubic's.

  settings: config.eval with `factor` (the generator's downscaling, 4).
  """

  def __init__(self, settings, card=None):
    self.factor = int(settings.get("factor", 4))
    self.min_side = 4 * self.factor  # the generator's size multiple

  def validate(self, adapt, images) -> ValidationResult:
    gaps = density_gaps(adapt, images, self.factor)
    result = (f"frequency-density gap to the domain's patches (mean |Δ log|): adapted "
              f"{gaps['adapted']:.3f}, bicubic {gaps['bicubic']:.3f}")
    return ValidationResult(
        metrics={"fd_gap_adapted": gaps["adapted"], "fd_gap_bicubic": gaps["bicubic"]},
        headline=result, summary=result)

  def run(self, adapt, images, output: pathlib.Path, source: str, dataset: str = "",
          **_) -> dict:
    """eval.py: OUT/LR and OUT/HR (adapted pairs), OUT/frequency_density.png, OUT/summary.json
    with the density gaps and curves."""
    count = write_adapted_pairs(adapt, images, output, self.factor)
    curves = density_curves(adapt, images, self.factor)
    plot_frequency_density(curves, output / "frequency_density.png")
    gaps = density_gaps(adapt, images, self.factor)
    report = {"fd_gap_adapted": gaps["adapted"], "fd_gap_bicubic": gaps["bicubic"],
              "curves": {k: v.tolist() for k, v in curves.items()}}
    (output / "summary.json").write_text(json.dumps(report, indent=1))
    print(f"FCA generator from {source}: {count} adapted LR/HR pairs in {output}/LR, "
          f"{output}/HR")
    print(f"Frequency-density gap to the domain (mean |Δ log|): adapted {gaps['adapted']:.3f}, "
          f"bicubic {gaps['bicubic']:.3f}; plot: {output / 'frequency_density.png'}")
    return report

"""Frequency Consistent Adaptation (Ji et al., AAAI 2021), after the CENG501 reproduction
(CENG501-Projects/CENG501-Spring2022, `Project_Cengiz/`).

The adaptation generator G (`fca_generator`) maps a source-domain image x (B, P, P, C) to an LR
image G(x) (B, P/4, P/4, C) whose frequency density should match the domain's. Per batch, on
device, from each training patch x (the student's dataset, `create_dataset.py`, built from one
image):
  x'   = a random Q×Q crop of x (Q = P/4; the domain at its own resolution),
  x^D  = a random Q×Q crop of x resized by 1/s, x^U = one of x resized by s,
with s = scales[0] (3.5) before `switch_step` and scales[1] (1.2) after (the curriculum).

Loss (the student's `train.py`):
  fdc_weight · L_FDC(G(x); x', x^D, x^U) + wd_weight · L_WD(x', G(x)),
minimised *cooperatively*: one gradient of that loss updates G, the FDC and the wavelet
discriminator with their own Adam (`config.critics.fdc`, `config.critics.wd`). The paper's
adversarial schedule is not in its public text, so this is the only exact description
(docs/deviations.md, "FCA losses and schedule").

Validation compares the frequency density (`ops.frequency_density`, the notebook's definition)
of G(x) and of bicubic x↓4 against the domain's own Q×Q patches.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sfm_jax import ops
from sfm_jax.data.images import center_crop, crop_to_multiple, save_png
from sfm_jax.data.patches import grid_patches
from sfm_jax.models.fca import fdc_loss, wavelet_loss
from sfm_jax.tasks.base import Task, ValidationResult

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # PIL "L" (ITU-R 601), as the notebook


def luma_255(images: jax.Array) -> jax.Array:
  """(…, H, W, C) in [0, 1] -> (…, H, W) gray on 0–255 (PIL "L" weights; C = 1 passes)."""
  gray = images[..., 0] if images.shape[-1] == 1 else images @ jnp.asarray(LUMA)
  return 255.0 * gray


def random_crops(key: jax.Array, images: jax.Array, size: int) -> jax.Array:
  """One uniformly placed size×size crop per image: (B, H, W, C) -> (B, size, size, C)."""
  b, h, w, c = images.shape
  tops = jax.random.randint(key, (b,), 0, h - size + 1)
  lefts = jax.random.randint(jax.random.fold_in(key, 1), (b,), 0, w - size + 1)
  crop = lambda image, top, left: jax.lax.dynamic_slice(image, (top, left, 0), (size, size, c))  # noqa: E731
  return jax.vmap(crop)(images, tops, lefts)


def rescaled_crops(key: jax.Array, images: jax.Array, scale: float, size: int) -> jax.Array:
  """Random size×size crops of `images` resized by `scale` (bicubic). Upscaling resizes only a
  random crop just large enough, so the cost does not grow with scale²."""
  if scale > 1:
    source = min(images.shape[1], math.ceil(size / scale) + 2)
    images = random_crops(jax.random.fold_in(key, 2), images, source)
  return random_crops(key, ops.imresize(images, scale=scale), size)


@dataclasses.dataclass(frozen=True)
class FCATask(Task):
  kind: str = "fca"
  scales: tuple[float, float] = (3.5, 1.2)  # the curriculum: scales[0], then scales[1]
  switch_step: int = 0  # the step that moves to scales[1] (0: never)
  fdc_weight: float = 1.0
  wd_weight: float = 1e-3
  factor: int = 4  # G's downscaling: Q = P / factor

  def __post_init__(self):
    if max(self.scales) > self.factor:
      raise ValueError(f"task.scales={self.scales}: a patch shrunk by more than the generator's "
                       f"factor {self.factor} is smaller than G(x); use scales <= {self.factor}.")

  def comparison_patches(self, key: jax.Array, x: jax.Array, scale: float) -> dict:
    """x' , x^D and x^U for the patches x (B, P, P, C) at curriculum scale s."""
    size = x.shape[1] // self.factor
    keys = jax.random.split(key, 3)
    return {"patch": random_crops(keys[0], x, size),
            "down": rescaled_crops(keys[1], x, 1.0 / scale, size),
            "up": rescaled_crops(keys[2], x, scale, size)}

  def synthesize(self, key: jax.Array, hr: jax.Array, step: jax.Array) -> dict:
    """Patches x (B, P, P, C), P a multiple of 4·factor -> dict(source, patch, down, up)."""
    first, second = (lambda k, x, s=s: self.comparison_patches(k, x, s) for s in self.scales)
    late = (step >= self.switch_step) & (self.switch_step > 0)
    return {"source": hr, **jax.lax.cond(late, second, first, key, hr)}

  def predict(self, model, batch: dict) -> jax.Array:
    return model(batch["source"])

  def losses(self, generated: jax.Array, batch: dict, fdc, wd) -> dict:
    return {"fdc": fdc_loss(fdc, generated, batch["patch"], batch["down"], batch["up"]),
            "wd": wavelet_loss(wd, batch["patch"], generated)}

  def update(self, networks, optimizers, batch):
    """One gradient of the joint loss; G, the FDC and the WD each take an Adam step."""
    def joint_loss(generator, fdc, wd):
      terms = self.losses(self.predict(generator, batch), batch, fdc, wd)
      return self.fdc_weight * terms["fdc"] + self.wd_weight * terms["wd"], terms

    names = ("model", "fdc", "wd")
    (loss, terms), grads = nnx.value_and_grad(joint_loss, argnums=(0, 1, 2), has_aux=True)(
        *(networks[n] for n in names))
    for name, grad in zip(names, grads, strict=True):
      optimizers[name].update(networks[name], grad)
    return {"loss": loss, **terms}

  def density_curves(self, adapt, images: list) -> dict[str, np.ndarray]:
    """Mean frequency-density curves ("notebook" definition, gray 0–255) of G(x) ("adapted"),
    of bicubic x↓factor ("bicubic") and of the images' own Q×Q grid patches ("domain"), over
    `images` ((name, uint8 HWC) pairs) cropped to multiples of 4·factor; Q = the shorter LR
    side."""
    curves = {"adapted": [], "bicubic": [], "domain": []}
    for _, image in images:
      source = self.source_crop(image)
      x, size = jnp.asarray(source)[None], min(source.shape[:2]) // self.factor
      lr = {"adapted": adapt(x), "bicubic": ops.imresize(x, scale=1.0 / self.factor)}
      for name, image_lr in lr.items():
        curves[name].append(ops.frequency_density(luma_255(center_crop(image_lr, size))))
      domain = jnp.asarray(grid_patches(source, size, size))
      curves["domain"].append(ops.frequency_density(luma_255(domain)))
    return {k: np.mean([np.asarray(c) for c in v], axis=0) for k, v in curves.items()}

  def density_gaps(self, adapt, images: list) -> dict[str, float]:
    """Mean |log FD(·) − log FD(domain)| of G(x) ("adapted") and bicubic x↓factor."""
    logs = {k: np.log(v) for k, v in self.density_curves(adapt, images).items()}
    return {k: float(np.mean(np.abs(logs[k] - logs["domain"]))) for k in ("adapted", "bicubic")}

  def source_crop(self, image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, C) -> float [0, 1] cropped to multiples of 4·factor (G's size multiple)."""
    multiple = 4 * self.factor
    if min(image.shape[:2]) < multiple:
      raise ValueError(f"an image of {image.shape[0]}×{image.shape[1]} is smaller than "
                       f"{multiple}×{multiple}; FCA needs larger images.")
    return crop_to_multiple(image, multiple)

  def validate(self, apply, images, config, multiple: int = 1) -> ValidationResult:
    gaps = self.density_gaps(apply, images)
    result = (f"frequency-density gap to the domain's patches (mean |Δ log|): adapted "
              f"{gaps['adapted']:.3f}, bicubic {gaps['bicubic']:.3f}")
    return ValidationResult(
        metrics={"fd_gap_adapted": gaps["adapted"], "fd_gap_bicubic": gaps["bicubic"]},
        headline=result, summary=result)


def write_adapted_pairs(adapt, images: list, out, factor: int = 4) -> int:
  """For every (name, uint8 HWC) image: OUT/HR/name.png (the image cropped to multiples of
  4·factor) and OUT/LR/name.png (G of it, 8 bits): SR training pairs in the image's domain.
  Returns the number of pairs."""
  task = FCATask(factor=factor)
  for name, image in images:
    hr = task.source_crop(image)
    stem = pathlib.Path(name).stem
    save_png(pathlib.Path(out) / "HR" / f"{stem}.png", hr)
    save_png(pathlib.Path(out) / "LR" / f"{stem}.png", np.asarray(adapt(jnp.asarray(hr)[None]))[0])
  return len(images)


def plot_frequency_density(curves: dict[str, np.ndarray], path) -> None:
  """A PNG of the frequency-density curves (`FCATask.density_curves`), log scale."""
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

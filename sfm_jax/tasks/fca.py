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

Validation (`evaluation.fca`, protocol "fca") compares the frequency density of G(x) and of
bicubic x↓4 with the domain's own Q×Q patches.
"""

from __future__ import annotations

import dataclasses
import math

import jax
from flax import nnx

from sfm_jax import ops
from sfm_jax.models.fca import fdc_loss, wavelet_loss
from sfm_jax.tasks.base import Task


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

  protocol = "fca"

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

  def validation_settings(self, config):
    settings = super().validation_settings(config)
    settings.factor = self.factor
    return settings

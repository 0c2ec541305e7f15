"""NatSR's Natural Manifold Discriminator training (JWSoh/NatSR `Train_NMD/`).

Each batch of HR patches (B, P, P, C) becomes, on device:
- rows [0, B/4): the noisy class, `ops.inject_dct(x, σ)` (noise on the last row and column of
  every 8×8 DCT tile), label 0;
- rows [B/4, B/2): the blurry class, α·x + (1 − α)·ILR(x), ILR = bicubic ↓4 then ↑4, label 0;
- the rest: natural, x itself, label 1.
Loss: sigmoid cross-entropy on the NMD's logits.

Curriculum (σ from 0.1, α from 0.5): every `curriculum_every` steps the NMD classifies a fixed
held-out set (2n patches of the validation images: the first n made noisy / blurry, the last n
clean), keeping windows of the last 10 accuracies per class. When the noisy window's mean reaches
95%, σ ← 0.8·σ; when the blurry one does, α ← min(α + 0.1, 0.9). The released code moves α only
when the mean *equals* 95.0 (`Train_NMD/train.py`, almost certainly a typo; docs/deviations.md,
"NMD curriculum: the α rule"): `alpha_rule="equal"`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from sfm_jax import ops
from sfm_jax.data.patches import grid_patches
from sfm_jax.results import ValidationResult
from sfm_jax.tasks.base import Task


def interpolated_lr(hr: jax.Array, scale: int) -> jax.Array:
  """NatSR's "ILR": MATLAB bicubic ↓scale then ↑scale; (B, P, P, C) -> same shape."""
  return ops.imresize(ops.imresize(hr, scale=1.0 / scale), scale=float(scale))


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Percentage of sigmoid(logits) > 0.5 agreeing with the 0/1 labels."""
  return 100.0 * jnp.mean(((logits > 0).astype(jnp.float32) == labels).astype(jnp.float32))


def held_out_patches(images: list[tuple[str, np.ndarray]], size: int, count: int) -> np.ndarray:
  """`count` (size, size, C) float patches in [0, 1] from a grid over `images` ((name, uint8
  HWC) pairs), cycling through the grid when it has fewer cells."""
  cells = [cell for _, image in images if min(image.shape[:2]) >= size
           for cell in grid_patches(image, size, size)]
  if not cells:
    raise ValueError(f"no validation image is {size}×{size} or larger; lower data.patch_size "
                     "or use larger validation images.")
  return np.stack([cells[k % len(cells)] for k in range(count)]).astype(np.float32) / 255.0


@dataclasses.dataclass(frozen=True)
class NMDTask(Task):
  kind: str = "nmd"
  scale: int = 4  # the ILR's bicubic factor
  initial_sigma: float = 0.1
  initial_alpha: float = 0.5
  sigma_decay: float = 0.8
  alpha_increment: float = 0.1
  alpha_max: float = 0.9
  curriculum_every: int = 100
  curriculum_window: int = 10
  curriculum_threshold: float = 95.0
  alpha_rule: str = "at_least"  # "at_least" (intended) or "equal" (the released code)
  curriculum_patches: int = 100  # n per half of the held-out curriculum set (the code: 100)
  test_sigma: float = 0.1  # validation: accuracy against inject_dct at this σ ...
  test_alpha: float = 0.5  # ... and against the blurry class at this α

  def __post_init__(self):
    if self.alpha_rule not in ("at_least", "equal"):
      raise ValueError(f"task.alpha_rule={self.alpha_rule!r}; use 'at_least' or 'equal'.")

  def initial_state(self) -> dict:
    window = np.zeros(self.curriculum_window, np.float32)
    return {"sigma": np.float32(self.initial_sigma), "alpha": np.float32(self.initial_alpha),
            "noisy_window": window, "blurry_window": window.copy()}

  def constants_for(self, val_images, config) -> dict:
    n = self.curriculum_patches
    return {"patches": held_out_patches(val_images, config.data.patch_size, 2 * n)}

  def blurry(self, hr: jax.Array, alpha) -> jax.Array:
    """The blurry class α·HR + (1 − α)·ILR(HR); (B, P, P, C) -> same."""
    return alpha * hr + (1.0 - alpha) * interpolated_lr(hr, self.scale)

  def synthesize(self, key: jax.Array, hr: jax.Array, step: jax.Array) -> dict:
    """HR patches (B, P, P, C), P a multiple of 8 and of the scale -> dict(images, labels)."""
    quarter = hr.shape[0] // 4
    noisy = ops.inject_dct(key, hr[:quarter], self.state["sigma"])
    blurry = self.blurry(hr[quarter:2 * quarter], self.state["alpha"])
    images = jnp.concatenate([noisy, blurry, hr[2 * quarter:]])
    labels = (jnp.arange(hr.shape[0]) >= 2 * quarter).astype(jnp.float32)
    return {"images": images, "labels": labels}

  def predict(self, model, batch: dict) -> jax.Array:
    return model(batch["images"])

  def loss(self, output: jax.Array, batch: dict) -> jax.Array:
    logits = output.astype(jnp.float32)  # bf16 under train.compute_dtype="bfloat16"
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, batch["labels"]))

  def class_accuracies(self, classify, patches, key, sigma, alpha):
    """(accuracy noisy-vs-clean, accuracy blurry-vs-clean) in %, on 2n held-out patches."""
    n = patches.shape[0] // 2
    clean = classify(patches[n:])
    labels = jnp.concatenate([jnp.zeros(n), jnp.ones(n)])
    noisy = classify(ops.inject_dct(key, patches[:n], sigma))
    blurry = classify(self.blurry(patches[:n], alpha))
    return (accuracy(jnp.concatenate([noisy, clean]), labels),
            accuracy(jnp.concatenate([blurry, clean]), labels))

  def advance(self, state, networks, step):
    """Every `curriculum_every` steps: held-out accuracies -> windows -> σ / α updates."""
    graphdef, weights = nnx.split(networks["model"])

    def curriculum(state, weights):
      classify = nnx.merge(graphdef, weights)
      acc_noisy, acc_blurry = self.class_accuracies(
          classify, self.constants["patches"], jax.random.fold_in(jax.random.key(1), step),
          state["sigma"], state["alpha"])
      noisy = jnp.roll(state["noisy_window"], -1).at[-1].set(acc_noisy)
      blurry = jnp.roll(state["blurry_window"], -1).at[-1].set(acc_blurry)
      easy_noise = jnp.mean(noisy) >= self.curriculum_threshold
      blurry_mean = jnp.mean(blurry)
      easy_blur = (blurry_mean >= self.curriculum_threshold if self.alpha_rule == "at_least"
                   else blurry_mean == self.curriculum_threshold)
      return {"sigma": jnp.where(easy_noise, state["sigma"] * self.sigma_decay, state["sigma"]),
              "alpha": jnp.where(easy_blur, jnp.minimum(state["alpha"] + self.alpha_increment,
                                                        self.alpha_max), state["alpha"]),
              "noisy_window": noisy, "blurry_window": blurry}

    due = (step + 1) % self.curriculum_every == 0
    state = jax.lax.cond(due, curriculum, lambda state, _: state, state, weights)
    return state, {"sigma": state["sigma"], "alpha": state["alpha"]}

  def validate(self, apply, images, config) -> ValidationResult:
    """Held-out accuracy of the NMD against inject_dct at `test_sigma` and the blurry class at
    `test_alpha` (each against as many clean patches of the validation images)."""
    patches = jnp.asarray(held_out_patches(images, config.data.patch_size,
                                           2 * self.curriculum_patches))
    acc_noisy, acc_blurry = self.class_accuracies(apply, patches, jax.random.key(2),
                                                  self.test_sigma, self.test_alpha)
    sigma = float(self.state.get("sigma", self.initial_sigma))
    alpha = float(self.state.get("alpha", self.initial_alpha))
    result = (f"clean vs inject_dct σ={self.test_sigma:g} {float(acc_noisy):.1f}%, clean vs "
              f"blurry α={self.test_alpha:g} {float(acc_blurry):.1f}%")
    return ValidationResult(
        metrics={"accuracy_noisy": float(acc_noisy), "accuracy_blurry": float(acc_blurry),
                 "sigma": sigma, "alpha": alpha},
        headline=f"NMD accuracy {result}",
        summary=f"NMD accuracy {result} (curriculum now σ={sigma:.4g}, α={alpha:.2g})")

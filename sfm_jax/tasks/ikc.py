"""IKC (Gu et al. 2019), as SFM trains it (`SR/IKC`): blind SR in three stages.

1. "sftmd": the SFTMD super-resolver learns LR + true kernel code -> HR (L1).
2. "predictor": the Predictor learns LR -> kernel code (L2).
3. "corrector": with SFTMD and the Predictor frozen, the Corrector learns to refine a code from
   the SR image it produces: est = Predictor(LR); `corrector_steps` times: est <- Corrector(
   SFTMD(LR, est), est), one optimiser update per step on ‖est − code‖² (IKC's `step: 7`).

The degradation is the SR task's, always blurred: HR -> [SFM] -> isotropic Gaussian blur with
σ ~ U(0.2, 4) on 21×21 -> bicubic ↓scale. Kernel codes are the kernels projected on the PCA
basis of `ops.kernel_pca`. Deviations from the released code, both explained in
docs/deviations.md ("IKC degradation, SFM and test"): the downsampler is MATLAB bicubic (IKC: PIL
bicubic after a truncating uint8 cast), and SFM follows the paper unless configured as the
release (rate 1.0, mode "random", as `SR/IKC/train_IKC.py`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sfm_jax import ops
from sfm_jax.inference import make_apply
from sfm_jax.models.ikc import iterative_correction
from sfm_jax.tasks.sr import SRTask
from sfm_jax.weights import load_frozen

STAGES = ("sftmd", "predictor", "corrector")


@dataclasses.dataclass(frozen=True)
class IKCTask(SRTask):
  kind: str = "ikc"
  stage: str = "sftmd"
  blur_sigma_range: tuple[float, float] = (0.2, 4.0)
  code_len: int = 10
  corrector_steps: int = 7
  sftmd_weights: str = ""  # a trained SFTMD (weights file), for the predictor/corrector stages
  predictor_weights: str = ""  # a trained Predictor, for the corrector stage

  def __post_init__(self):
    super().__post_init__()
    if self.stage not in STAGES:
      raise ValueError(f"task.stage={self.stage!r}; choose one of {STAGES}.")
    if not 0 < self.blur_sigma_range[0] <= self.blur_sigma_range[1]:
      raise ValueError(f"task.blur_sigma_range={self.blur_sigma_range}: IKC needs blurred LR; "
                       "use 0 < lo <= hi, e.g. (0.2, 4.0).")
    needs = {"predictor": ("sftmd_weights",),
             "corrector": ("sftmd_weights", "predictor_weights")}.get(self.stage, ())
    for field in needs:
      if not getattr(self, field):
        raise ValueError(f"the {self.stage} stage needs task.{field}: train that stage first "
                         f"(configs/ikc_*.py) and pass --config.task.{field}=WORKDIR/"
                         "weights.msgpack.")

  @property
  def updates_per_batch(self) -> int:
    return self.corrector_steps if self.stage == "corrector" else 1

  @property
  def pca(self) -> np.ndarray:
    return ops.kernel_pca(self.kernel_size, (0.2, 4.0), self.code_len)

  def frozen_networks(self) -> dict[str, nnx.Module]:
    if self.stage != "corrector":
      return {}
    return {"sftmd": load_frozen(self.sftmd_weights),
            "predictor": load_frozen(self.predictor_weights)}

  def synthesize(self, key: jax.Array, hr: jax.Array, step: jax.Array) -> dict:
    """HR patches (B, P, P, C) -> dict(lr, target, code[, estimate])."""
    lr, kernels = self.degrade(key, hr)
    batch = {"lr": lr, "target": hr, "code": ops.kernel_codes(kernels, self.pca)}
    if self.stage == "corrector":
      batch["estimate"] = jax.lax.stop_gradient(self.networks["predictor"](lr))
    return batch

  def predict(self, model, batch: dict) -> jax.Array:
    if self.stage == "sftmd":
      return model(batch["lr"], batch["code"])
    if self.stage == "predictor":
      return model(batch["lr"])
    sr = jax.lax.stop_gradient(self.networks["sftmd"](batch["lr"], batch["estimate"]))
    return model(sr, batch["estimate"])

  def loss(self, output: jax.Array, batch: dict) -> jax.Array:
    if self.stage == "sftmd":
      return jnp.mean(jnp.abs(output - batch["target"]))
    return jnp.mean((output - batch["code"]) ** 2)

  def next_batch(self, batch: dict, output: jax.Array) -> dict:
    if self.stage != "corrector":
      return batch
    return {**batch, "estimate": jax.lax.stop_gradient(output)}

  @property
  def label(self) -> str:
    return {"sftmd": "SFTMD (true kernel)", "predictor": "SFTMD (predicted kernel)",
            "corrector": f"IKC ({self.corrector_steps} corrections)"}[self.stage]

  def predictor(self, apply):
    """Validation SR of the stage being trained: SFTMD with the true code of the validation
    blur (sftmd), with the predicted code (predictor), or after the corrections (corrector)."""
    if self.stage == "sftmd":
      code = ops.gaussian_codes([self.val_blur_sigma], self.kernel_size, self.code_len)
      return lambda lr: apply(lr, code)
    sftmd = make_apply(load_frozen(self.sftmd_weights))
    if self.stage == "predictor":
      return lambda lr: sftmd(lr, apply(lr))
    predictor = make_apply(load_frozen(self.predictor_weights))
    return lambda lr: iterative_correction(sftmd, predictor, apply, lr,
                                           self.corrector_steps)[-1][0]

"""The kernel-estimation protocol (MVA DELIRES TP1 Q11): the frozen SR network's output on
validation images degraded with the estimated blur kernel, scored against the same with the
initial kernel, and the estimate's σ beside the true one."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sfm_jax import ops
from sfm_jax.evaluation.sr import evaluate_sr, sr_min_side
from sfm_jax.inference import make_apply
from sfm_jax.metrics import quantize
from sfm_jax.models import get_model
from sfm_jax.models.kernels import kernel_sigma
from sfm_jax.results import ValidationResult
from sfm_jax.weights import load_frozen

_degrade = jax.jit(ops.blur_downsample, static_argnames=("scale", "downsample"))


class KernelEvaluator:
  """Scores a kernel module `kernel() -> (k, k)`.

  settings: config.eval with scale, downsample, sr_weights (the frozen SR network), true_sigma
  (0: unknown), seed and initial_model ({name, kwargs}: the untrained kernel, the baseline).
  """

  def __init__(self, settings, card=None):
    self.settings = settings
    self.min_side = sr_min_side(settings.scale)

  def validate(self, kernel_fn, images) -> ValidationResult:
    """Y-channel PSNR/SSIM (crop = scale) of the frozen SR of `images` degraded with the
    estimated kernel (uint8 LR, as `evaluate_sr`), against the same with the initial kernel.
    The metrics add "sigma" (`kernel_sigma` of the estimate); the extras hold "kernel"."""
    s = self.settings
    kernel = np.asarray(kernel_fn())
    initial = np.asarray(get_model(s.initial_model["name"], seed=s.seed,
                                   **s.initial_model["kwargs"])())
    sr = make_apply(load_frozen(s.sr_weights))
    psnr, ssim = self._scores(sr, kernel, images)
    initial_psnr, _ = self._scores(sr, initial, images)
    sigma, sigma0 = float(kernel_sigma(kernel)), float(kernel_sigma(initial))
    true = f" (true {s.true_sigma:g})" if s.true_sigma > 0 else ""
    result = ValidationResult.comparison(
        f"×{s.scale} {s.downsample}, estimated σ={sigma:.2f}{true}",
        (f"initial kernel (σ={sigma0:.2f})", "estimated kernel"), initial_psnr, psnr, ssim,
        sigma=sigma)
    return dataclasses.replace(result, extras={"kernel": kernel})

  def _scores(self, sr, kernel: np.ndarray, images) -> tuple[float, float]:
    """Mean (PSNR, SSIM) of `evaluate_sr` with the LR made by `ops.blur_downsample`."""
    scale, downsample = self.settings.scale, self.settings.downsample

    def degrade_with_kernel(hr):
      lr = _degrade(jnp.asarray(hr)[None], jnp.asarray(kernel), scale, downsample)
      return quantize(lr[0]).astype(np.float32)

    rows = evaluate_sr(lambda lr: sr(jnp.asarray(lr)[None])[0], images, scale,
                       degrade=degrade_with_kernel)
    return tuple(float(np.mean([row[k] for row in rows])) for k in ("psnr", "ssim"))

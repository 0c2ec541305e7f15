"""What a validation found: the type that evaluators (`sfm_jax.evaluation`) and the tasks that
validate themselves (NMD) return to the training loop and to eval.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class ValidationResult:
  """What one validation found.

  metrics: scalars, logged as val_<name> and returned by `train_and_evaluate`.
  headline: a few words printed at every periodic validation.
  summary: the final result, printed as "Validation on N held-out images[ at SETTING]: SUMMARY".
  setting: the conditions (e.g. "σ=25", "×4, blur σ=1.6"); "" when none apply.
  extras: non-scalar results returned with the metrics (e.g. an estimated kernel).
  """
  metrics: Mapping[str, float]
  headline: str
  summary: str
  setting: str = ""
  extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  @classmethod
  def comparison(cls, setting: str, labels: tuple[str, str], baseline_psnr: float,
                 psnr: float, ssim: float, **metrics: float) -> ValidationResult:
    """A result that compares the model with a baseline (the noisy input, bicubic, …)."""
    before, after = labels
    return cls(metrics={"psnr": psnr, "ssim": ssim, "baseline_psnr": baseline_psnr, **metrics},
               headline=f"{setting} PSNR {psnr:.2f} dB",
               summary=f"{before} {baseline_psnr:.2f} dB -> {after} {psnr:.2f} dB",
               setting=setting)

  def worse_than_baseline(self) -> bool:
    """Whether the model's PSNR is below (or NaN against) the baseline it should improve on."""
    psnr, baseline = self.metrics.get("psnr"), self.metrics.get("baseline_psnr")
    return psnr is not None and baseline is not None and not psnr >= baseline

  def final_line(self, num_images: int) -> str:
    at = f" at {self.setting}" if self.setting else ""
    return f"Validation on {num_images} held-out images{at}: {self.summary}"

"""IKC's test (Gu et al. 2019, IKC `codes/test.py`): on blurred LR (`evaluation.sr`), the
Predictor's kernel code, then SFTMD / Corrector steps, scored after every step."""

from __future__ import annotations

import pathlib

import numpy as np

from sfm_jax import ops
from sfm_jax.evaluation.pictures import print_report
from sfm_jax.evaluation.sr import sr_cases, sr_min_side, write_sr_reports
from sfm_jax.metrics import quantize, sr_scores
from sfm_jax.models.ikc import iterative_correction

IKC_COLUMNS = ("psnr_predicted", "psnr_best", "best_step", "psnr_true_kernel")


def evaluate_ikc(sftmd, predictor, corrector, code_of_sigma, images, scale: int, *,
                 blur_sigma: float, corrections: int = 7, kernel_size: int = 21,
                 y_channel: bool = True, progress: bool = False) -> list[dict]:
  """IKC's test on blurred LR (`degrade_sr`): Predictor, then `corrections` × (SFTMD ->
  Corrector). sftmd(lr, code), predictor(lr), corrector(sr, code) are batched device functions;
  code_of_sigma(σ) -> (1, L). Rows hold the final step's PSNR/SSIM ("psnr", "ssim"), the
  Predictor-only PSNR, the best step's (IKC's test script picks it with the ground truth, an
  oracle), and SFTMD with the true kernel's code (the non-blind upper bound)."""
  rows = []
  true_code = code_of_sigma(blur_sigma)
  for hr, lr, _, row in sr_cases(images, scale, blur_sigma, kernel_size, y_channel, progress):
    outputs = [quantize(np.asarray(sr)[0]) for sr, _ in
               iterative_correction(sftmd, predictor, corrector, lr[None], corrections)]
    psnrs = [sr_scores(sr, hr, scale, y_channel)[0] for sr in outputs]
    row["psnr"], row["ssim"] = sr_scores(outputs[-1], hr, scale, y_channel)
    row["psnr_predicted"], row["psnr_best"] = psnrs[0], max(psnrs)
    row["best_step"] = int(np.argmax(psnrs))
    true_sr = quantize(np.asarray(sftmd(lr[None], true_code))[0])
    row["psnr_true_kernel"] = sr_scores(true_sr, hr, scale, y_channel)[0]
    rows.append(row)
  return rows


def format_ikc_table(summary: dict, scale: int, corrections: int) -> str:
  """One line per blur σ: mean PSNR of bicubic, Predictor only, after the corrections, the
  oracle-picked step and the true kernel (`summary` from `evaluation.sr.summarize_sr`)."""
  header = ("blur σ", "bicubic", "predicted", f"{corrections} corr.", "best step*", "true kernel")
  keys = ("bicubic_psnr", "psnr_predicted", "psnr", "psnr_best", "psnr_true_kernel")
  lines = [f"IKC ×{scale}, mean PSNR (dB); *best step picked with the ground truth (IKC's test)",
           "".join(f"{h:>13}" for h in header)]
  for sigma, means in summary.items():
    lines.append(f"{sigma:>13g}" + "".join(f"{means[k]:>13.2f}" for k in keys))
  return "\n".join(lines)


class IKCEvaluator:
  """eval.py's IKC test at every blur σ of `settings` (eval.blur_sigmas > 0, corrections,
  kernel_size, y_channel) for the (SFTMD, Predictor, Corrector) apply functions."""

  def __init__(self, settings, scale: int, code_len: int):
    if not settings.blur_sigmas or min(settings.blur_sigmas) <= 0:
      raise ValueError("IKC restores blurred images: set --config.eval.blur_sigmas to values > 0, "
                       "e.g. 1.8,2.6,3.2 (IKC's Gaussian8 range) or 0.2,1,2,3,4.")
    self.settings, self.scale, self.code_len = settings, scale, code_len
    self.min_side = sr_min_side(scale)

  def run(self, networks, images, output: pathlib.Path, source: str, dataset: str) -> dict:
    s = self.settings
    codes = lambda sigma: ops.gaussian_codes([sigma], s.kernel_size, self.code_len)  # noqa: E731
    rows = [row for sigma in s.blur_sigmas
            for row in evaluate_ikc(*networks, codes, images, self.scale,
                                    blur_sigma=float(sigma), corrections=s.corrections,
                                    kernel_size=s.kernel_size, y_channel=s.y_channel,
                                    progress=True)]
    summary = write_sr_reports(output, rows, self.scale, IKC_COLUMNS)
    print_report(source, dataset, images, format_ikc_table(summary, self.scale, s.corrections),
                 output)
    return summary

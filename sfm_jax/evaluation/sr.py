"""The SR test protocol: HR -> [Gaussian blur] -> MATLAB bicubic ↓ (8-bit LR) -> model, scored
with `metrics.sr_scores` (Y channel, border crop = scale) beside the bicubic baseline of the same
LR (see docs/deviations.md, "SR test protocol")."""

from __future__ import annotations

import csv
import json
import pathlib

import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from sfm_jax import ops
from sfm_jax.data.images import crop_to_multiple
from sfm_jax.evaluation.pictures import STRIP_IMAGES, print_report, write_strip
from sfm_jax.inference import restore_image, tile_context
from sfm_jax.metrics import SSIM_MIN_SIDE, quantize, sr_scores
from sfm_jax.niqe import niqe_or_nan
from sfm_jax.results import ValidationResult

SR_COLUMNS = ("image", "scale", "blur_sigma", "psnr", "ssim", "bicubic_psnr", "bicubic_ssim",
              "niqe", "bicubic_niqe")


def degrade_sr(hr: np.ndarray, scale: int, blur_sigma: float = 0.0,
               kernel_size: int = 21) -> np.ndarray:
  """The SR test degradation: optional isotropic Gaussian blur (σ in pixels, reflect borders)
  then MATLAB bicubic 1/scale, rounded to 8 bits. hr (H, W, C) in [0, 1], H and W multiples of
  the scale -> lr (H/scale, W/scale, C) float32."""
  hr = np.asarray(hr, np.float32)
  if blur_sigma > 0:
    hr = ops.blur(hr[None], ops.gaussian_kernel(kernel_size, blur_sigma))[0]
  return quantize(ops.imresize(hr, scale=1.0 / scale)).astype(np.float32)


def sr_cases(images, scale: int, blur_sigma: float, kernel_size: int, y_channel: bool,
             progress: bool, degrade=None):
  """Yields (hr, lr, bicubic, row) per (name, uint8 (H, W, C)) image: the HR cropped to
  multiples of the scale, its LR (`degrade_sr`, or `degrade(hr)` when given), the bicubic
  upscaling of that LR and a report row holding the bicubic scores."""
  for name, image in tqdm(images, desc=f"blur σ={blur_sigma:g}", disable=not progress):
    hr = crop_to_multiple(image, scale)
    lr = (degrade(hr) if degrade is not None
          else degrade_sr(hr, scale, blur_sigma, kernel_size))
    bicubic = quantize(ops.imresize(lr, scale=float(scale)))
    row = {"image": name, "scale": scale, "blur_sigma": blur_sigma}
    row["bicubic_psnr"], row["bicubic_ssim"] = sr_scores(bicubic, hr, scale, y_channel)
    yield hr, lr, bicubic, row


def evaluate_sr(upscale, images: list[tuple[str, np.ndarray]], scale: int, *,
                blur_sigma: float = 0.0, kernel_size: int = 21, y_channel: bool = True,
                progress: bool = False, degrade=None, niqe: bool = False,
                strip_dir: pathlib.Path | None = None) -> list[dict]:
  """HR images -> `degrade_sr` LR -> `upscale(lr (h, w, C)) -> (s·h, s·w, C)` (None: bicubic
  only), scored with `sr_scores` at crop = scale, and with NIQE (no reference; NaN for images
  under two 96×96 blocks) when `niqe`. Every row also carries the bicubic baseline of the same
  LR. `degrade(hr (H, W, C)) -> 8-bit LR` replaces `degrade_sr` (e.g. a given kernel). With
  `strip_dir`, writes bicubic | output | HR strips of the first images there."""
  rows = []
  for index, (hr, lr, bicubic, row) in enumerate(sr_cases(
      images, scale, blur_sigma, kernel_size, y_channel, progress, degrade)):
    sr = bicubic if upscale is None else quantize(upscale(lr))
    row["psnr"], row["ssim"] = sr_scores(sr, hr, scale, y_channel)
    if strip_dir is not None and index < STRIP_IMAGES:
      write_strip(strip_dir / f"{pathlib.Path(row['image']).stem}_blur{blur_sigma:g}.png", [
          (f"bicubic {row['bicubic_psnr']:.2f} dB", bicubic),
          (f"output {row['psnr']:.2f} dB", sr), ("HR", hr)])
    if niqe:
      row["niqe"], row["bicubic_niqe"] = (niqe_or_nan(x, scale) for x in (sr, bicubic))
    rows.append(row)
  return rows


def summarize_sr(rows: list[dict]) -> dict[float, dict[str, float]]:
  """{blur σ: {psnr, ssim, bicubic_psnr, bicubic_ssim, …}}: means over the images of every
  score column."""
  scores = [k for k in rows[0] if k not in SR_COLUMNS[:3]]
  sigmas = sorted({r["blur_sigma"] for r in rows})
  return {s: {k: float(np.mean([r[k] for r in rows if r["blur_sigma"] == s])) for k in scores}
          for s in sigmas}


def write_sr_reports(out_dir: pathlib.Path, rows: list[dict], scale: int,
                     extra_columns: tuple[str, ...] = ()) -> dict:
  """OUT/results.csv (one row per image and blur σ) and OUT/summary.json (means per blur σ,
  and at the top level those of the first σ); returns `summarize_sr(rows)`."""
  out_dir.mkdir(parents=True, exist_ok=True)
  with open(out_dir / "results.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=SR_COLUMNS + extra_columns)
    writer.writeheader()
    writer.writerows(rows)
  summary = summarize_sr(rows)
  first = next(iter(summary.values()))
  by_sigma = {f"{s:g}": means for s, means in summary.items()}
  (out_dir / "summary.json").write_text(
      json.dumps({"scale": scale, **first, "by_blur_sigma": by_sigma}, indent=2))
  return summary


def format_sr_table(summary: dict, name: str, scale: int, rgb: bool = False) -> str:
  """One line per blur σ: the bicubic baseline and the model, PSNR/SSIM (and NIQE)."""
  with_niqe = "niqe" in next(iter(summary.values()))
  scores = "PSNR/SSIM" + ("/NIQE" if with_niqe else "")
  width = 16 + 7 * with_niqe
  lines = [f"×{scale}, {scores} on {'RGB' if rgb else 'Y'}, border crop {scale}, "
           "LR = [Gaussian blur σ] + MATLAB bicubic (uint8)"
           + ("; NIQE: lower is more natural" if with_niqe else ""),
           f"{'blur σ':>7}{'bicubic':>{width}}" + (f"{name:>{width}}" if name != "bicubic" else "")]

  def cell(m, prefix):
    text = f"{m[prefix + 'psnr']:>9.2f}/{m[prefix + 'ssim']:.4f}"
    return text + (f"/{m[prefix + 'niqe']:.3f}" if with_niqe else "")

  for sigma, m in summary.items():
    lines.append(f"{sigma:>7g}{cell(m, 'bicubic_')}" + (cell(m, "") if name != "bicubic" else ""))
  return "\n".join(lines)


def plot_perception_distortion(points: dict[str, tuple[float, float]], path: pathlib.Path):
  """The perception–distortion plane (Blau & Michaeli, CVPR 2018): one labelled point (PSNR,
  NIQE) per model; better is up-right in PSNR and down in NIQE."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(5, 4))
  for label, (psnr_value, niqe_value) in points.items():
    ax.scatter(psnr_value, niqe_value)
    ax.annotate(label, (psnr_value, niqe_value), textcoords="offset points", xytext=(4, 4),
                fontsize=8)
  ax.set(xlabel="PSNR (dB) ↑", ylabel="NIQE ↓", title="Perception–distortion")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def sr_min_side(scale: int) -> int:
  """The smallest HR side the SR protocol scores: cropped to a multiple of `scale`, less the
  border crop of `scale` on each side, it still holds SSIM's 11×11 window."""
  return -(-(SSIM_MIN_SIDE[True] + 2 * scale) // scale) * scale


class SREvaluator:
  """The SR protocol of `settings` (an SR config.eval with `scale` and `blur_sigmas` set; `label`
  names the model's column) for `upscale(lr (1, h, w, C)) -> (1, s·h, s·w, C)`, or None for
  bicubic alone."""

  def __init__(self, settings, card=None):
    self.settings = settings
    self.scale = int(settings.scale)
    self.label = settings.get("label") or (card.name if card is not None else "SR")
    self.card = card
    self.min_side = sr_min_side(self.scale)

  def validate(self, upscale, images) -> ValidationResult:
    """PSNR/SSIM at the first blur σ against bicubic (training validation sets one)."""
    sigma = float(self.settings.blur_sigmas[0])
    rows = evaluate_sr(lambda lr: np.asarray(upscale(jnp.asarray(lr)[None]))[0], images,
                       self.scale, blur_sigma=sigma, kernel_size=self.settings.kernel_size,
                       y_channel=self.settings.y_channel)
    means = summarize_sr(rows)[sigma]
    blur = f", blur σ={sigma:g}" if sigma else ""
    return ValidationResult.comparison(f"×{self.scale}{blur}", ("bicubic", self.label),
                                       means["bicubic_psnr"], means["psnr"], means["ssim"])

  def run(self, upscale, images, output: pathlib.Path, source: str, dataset: str,
          save_images: bool = False, compare: tuple[str, ...] = ()) -> dict:
    """eval.py: every blur σ (eval.tile / tile_overlap / self_ensemble apply); OUT/results.csv,
    OUT/summary.json, bicubic | output | HR strips with `save_images`, and with eval.niqe
    OUT/perception_distortion.png (bicubic, this model and the `compare` folders' models)."""
    s = self.settings
    whole = None if upscale is None else (lambda lr: restore_image(
        lambda x, _: upscale(x), lr, 0.0, multiple=self.card.size_multiple, tile=s.tile,
        tile_overlap=tile_context(s.tile_overlap, self.card), self_ensemble=s.self_ensemble))
    niqe = s.get("niqe", False)
    rows = [row for sigma in s.blur_sigmas
            for row in evaluate_sr(whole, images, self.scale, blur_sigma=float(sigma),
                                   kernel_size=s.kernel_size, y_channel=s.y_channel,
                                   progress=True, niqe=niqe,
                                   strip_dir=output / "strips" if save_images else None)]
    summary = write_sr_reports(output, rows, self.scale)
    table = format_sr_table(summary, self.label, self.scale, rgb=not s.y_channel)
    print_report(source, dataset, images, table, output)
    if niqe:
      self._plot_perception_distortion(next(iter(summary.values())), compare, output)
    return summary

  def _plot_perception_distortion(self, means: dict, compare, output: pathlib.Path):
    points = {"bicubic": (means["bicubic_psnr"], means["bicubic_niqe"])}
    if self.label != "bicubic":
      points[f"{self.label} ({output.name})"] = (means["psnr"], means["niqe"])
    for folder in map(pathlib.Path, compare):
      other = json.loads((folder / "summary.json").read_text())
      if "niqe" not in other:
        raise ValueError(f"{folder}/summary.json has no NIQE; rerun eval.py there with "
                         "--config.eval.niqe=True.")
      points[folder.name] = (other["psnr"], other["niqe"])
    plot_perception_distortion(points, output / "perception_distortion.png")
    print(f"Perception–distortion plot: {output / 'perception_distortion.png'}")

"""The SFM denoising test protocol (spec §2.3) on whole images, with CSV/JSON reports.

For each image and σ: seeded Gaussian noise, noisy = clamp(clean + noise, 0, 1) (optional),
output = clamp(model(noisy), 0, 1), then PSNR (peak 1, whole image), SSIM and the DCT
low/high-band MSE of the SFM test script.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import pathlib

import jax
import numpy as np
from skimage.metrics import structural_similarity
from tqdm import tqdm

from sfm_jax import ops
from sfm_jax.inference import restore_image

CSV_COLUMNS = ("image", "sigma", "psnr", "ssim", "noisy_psnr", "dct_low_mse", "dct_high_mse")


@dataclasses.dataclass(frozen=True)
class Protocol:
  """How noisy inputs are made and outputs are scored; printed beside every table."""
  sigmas: tuple[float, ...] = tuple(range(5, 101, 5))
  clip_noisy: bool = True
  seed: int = 0
  self_ensemble: bool = False
  tile: int = 0
  tile_overlap: int = 32

  def describe(self) -> str:
    clamp = "clamped to [0, 1]" if self.clip_noisy else "not clamped"
    return (f"noise seed {self.seed}, noisy input {clamp}, output clamped, PSNR peak 1 on "
            "whole images, no border crop"
            + (", ×8 self-ensemble" if self.self_ensemble else ""))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
  """10·log10(1 / MSE) for images in [0, 1], in float64 over all pixels."""
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
  return float(10 * np.log10(1.0 / mse)) if mse > 0 else float("inf")


def ssim(a: np.ndarray, b: np.ndarray) -> float:
  """skimage SSIM (7×7 uniform window, data range 1) over (H, W, C) images."""
  return float(structural_similarity(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                     data_range=1.0, channel_axis=-1))


def noisy_version(clean: np.ndarray, sigma: float, image_index: int, protocol: Protocol):
  """The seeded noisy input for (image, σ): the same for every model evaluated."""
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(protocol.seed), image_index),
                           int(round(sigma * 1000)))
  noise = np.asarray(ops.gaussian_noise(key, clean.shape, sigma))
  noisy = clean + noise
  return np.clip(noisy, 0.0, 1.0) if protocol.clip_noisy else noisy


def evaluate_images(denoise, images: list[tuple[str, np.ndarray]], protocol: Protocol,
                    multiple: int = 1, save_dir: pathlib.Path | None = None,
                    progress: bool = False) -> list[dict]:
  """Runs the protocol; images are (name, uint8 (H, W, C)); returns one row per (image, σ)."""
  rows = []
  for index, (name, image) in enumerate(tqdm(images, desc="images", disable=not progress)):
    clean = image.astype(np.float32) / 255.0
    for sigma in protocol.sigmas:
      noisy = noisy_version(clean, sigma, index, protocol)
      restored = np.clip(restore_image(denoise, noisy, sigma / 255.0, multiple=multiple,
                                       tile=protocol.tile, tile_overlap=protocol.tile_overlap,
                                       self_ensemble=protocol.self_ensemble), 0.0, 1.0)
      low, high = ops.dct_band_mse(restored, clean)
      rows.append({"image": name, "sigma": float(sigma), "psnr": psnr(restored, clean),
                   "ssim": ssim(restored, clean), "noisy_psnr": psnr(noisy, clean),
                   "dct_low_mse": float(low), "dct_high_mse": float(high)})
      if save_dir is not None:
        save_png(save_dir / f"{pathlib.Path(name).stem}_sigma{sigma:g}.png", restored)
  return rows


def summarize(rows: list[dict]) -> dict[float, dict[str, float]]:
  """Mean of every metric per σ."""
  out = {}
  for sigma in sorted({r["sigma"] for r in rows}):
    group = [r for r in rows if r["sigma"] == sigma]
    out[sigma] = {k: float(np.mean([r[k] for r in group])) for k in CSV_COLUMNS[2:]}
    out[sigma]["images"] = len(group)
  return out


def format_table(summary: dict, protocol: Protocol) -> str:
  lines = [f"Protocol: {protocol.describe()}.",
           f"{'sigma':>6}{'noisy PSNR':>12}{'PSNR':>9}{'SSIM':>8}{'images':>8}"]
  for sigma, m in summary.items():
    lines.append(f"{sigma:>6g}{m['noisy_psnr']:>12.2f}{m['psnr']:>9.2f}{m['ssim']:>8.4f}"
                 f"{m['images']:>8d}")
  return "\n".join(lines)


def write_reports(out_dir: pathlib.Path, rows: list[dict], summary: dict, protocol: Protocol):
  """OUT/results.csv (one row per image and σ) and OUT/summary.json (means per σ)."""
  out_dir.mkdir(parents=True, exist_ok=True)
  with open(out_dir / "results.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  report = {"protocol": dataclasses.asdict(protocol),
            "per_sigma": {f"{s:g}": m for s, m in summary.items()}}
  (out_dir / "summary.json").write_text(json.dumps(report, indent=2))


def save_png(path: pathlib.Path, image: np.ndarray):
  """Writes an (H, W, C) image in [0, 1] as an 8-bit PNG (creating the folder)."""
  from PIL import Image

  path.parent.mkdir(parents=True, exist_ok=True)
  pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)


# --- super-resolution -------------------------------------------------------------------------

SR_COLUMNS = ("image", "scale", "blur_sigma", "psnr", "ssim", "bicubic_psnr", "bicubic_ssim")


def quantize(x) -> np.ndarray:
  """Round to 8 bits, as MATLAB's uint8 images: clip to [0, 1], ×255, round, /255."""
  return np.round(np.clip(np.asarray(x, np.float64), 0, 1) * 255) / 255


def sr_scores(output: np.ndarray, target: np.ndarray, crop: int, y_channel: bool = True):
  """(PSNR, SSIM) on 0–255 values after cropping `crop` pixels per border; on MATLAB's Y channel
  for colour images (the SR papers' protocol), SSIM with MATLAB's 11×11 Gaussian window."""
  def prepare(img):
    img = np.asarray(img, np.float64)
    if y_channel and img.shape[-1] == 3:
      img = np.asarray(ops.rgb_to_y(np.asarray(img, np.float32)), np.float64)
    img = img * 255
    return img[crop:-crop, crop:-crop] if crop else img

  a, b = prepare(output), prepare(target)
  mse = np.mean((a - b) ** 2)
  psnr_value = float(10 * np.log10(255.0**2 / mse)) if mse > 0 else float("inf")
  ssim_value = float(structural_similarity(a, b, data_range=255.0, channel_axis=-1,
                                           gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False))
  return psnr_value, ssim_value


def degrade_sr(hr: np.ndarray, scale: int, blur_sigma: float = 0.0,
               kernel_size: int = 21) -> np.ndarray:
  """The SR test degradation: optional isotropic Gaussian blur (σ in pixels, reflect borders)
  then MATLAB bicubic 1/scale, rounded to 8 bits. hr (H, W, C) in [0, 1], H and W multiples of
  the scale -> lr (H/scale, W/scale, C) float32."""
  hr = np.asarray(hr, np.float32)
  if blur_sigma > 0:
    hr = ops.blur(hr[None], ops.gaussian_kernel(kernel_size, blur_sigma))[0]
  return quantize(ops.imresize(hr, scale=1.0 / scale)).astype(np.float32)


def crop_to_scale(image: np.ndarray, scale: int) -> np.ndarray:
  """uint8 (H, W, C) -> float32 in [0, 1], cropped to multiples of the scale (modcrop)."""
  h, w = image.shape[:2]
  return image[:h - h % scale, :w - w % scale].astype(np.float32) / 255.0


def _sr_cases(images, scale: int, blur_sigma: float, kernel_size: int, y_channel: bool,
              progress: bool, degrade=None):
  """Yields (hr, lr, bicubic, row) per image: the HR crop, its LR (`degrade_sr`, or
  `degrade(hr)` when given), the bicubic upscaling of that LR and a report row holding the
  bicubic scores."""
  for name, image in tqdm(images, desc=f"blur σ={blur_sigma:g}", disable=not progress):
    hr = crop_to_scale(image, scale)
    lr = (degrade(hr) if degrade is not None
          else degrade_sr(hr, scale, blur_sigma, kernel_size))
    bicubic = quantize(ops.imresize(lr, scale=float(scale)))
    row = {"image": name, "scale": scale, "blur_sigma": blur_sigma}
    row["bicubic_psnr"], row["bicubic_ssim"] = sr_scores(bicubic, hr, scale, y_channel)
    yield hr, lr, bicubic, row


def evaluate_sr(upscale, images: list[tuple[str, np.ndarray]], scale: int, *,
                blur_sigma: float = 0.0, kernel_size: int = 21, y_channel: bool = True,
                progress: bool = False, degrade=None) -> list[dict]:
  """HR images -> `degrade_sr` LR -> `upscale` (None: bicubic only), scored with `sr_scores` at
  crop = scale. Every row also carries the bicubic baseline of the same LR. `degrade(hr (H, W,
  C)) -> 8-bit LR` replaces `degrade_sr` (e.g. a given blur kernel)."""
  rows = []
  for hr, lr, bicubic, row in _sr_cases(images, scale, blur_sigma, kernel_size, y_channel,
                                        progress, degrade):
    sr = bicubic if upscale is None else quantize(upscale(lr))
    row["psnr"], row["ssim"] = sr_scores(sr, hr, scale, y_channel)
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
  """One line per blur σ: the bicubic baseline and the model, PSNR/SSIM."""
  lines = [f"×{scale}, PSNR/SSIM on {'RGB' if rgb else 'Y'}, border crop {scale}, "
           "LR = [Gaussian blur σ] + MATLAB bicubic (uint8)",
           f"{'blur σ':>7}{'bicubic':>16}" + (f"{name:>16}" if name != "bicubic" else "")]
  for sigma, m in summary.items():
    line = f"{sigma:>7g}{m['bicubic_psnr']:>9.2f}/{m['bicubic_ssim']:.4f}"
    if name != "bicubic":
      line += f"{m['psnr']:>9.2f}/{m['ssim']:.4f}"
    lines.append(line)
  return "\n".join(lines)


# --- IKC: iterative kernel correction ---------------------------------------------------------

IKC_COLUMNS = ("psnr_predicted", "psnr_best", "best_step", "psnr_true_kernel")


def evaluate_ikc(sftmd, predictor, corrector, code_of_sigma, images, scale: int, *,
                 blur_sigma: float, corrections: int = 7, kernel_size: int = 21,
                 y_channel: bool = True, progress: bool = False) -> list[dict]:
  """IKC's test on blurred LR (`degrade_sr`): Predictor, then `corrections` × (SFTMD ->
  Corrector). sftmd(lr, code), predictor(lr), corrector(sr, code) are batched device functions;
  code_of_sigma(σ) -> (1, L). Rows hold the final step's PSNR/SSIM ("psnr", "ssim"), the
  Predictor-only PSNR, the best step's (IKC's test script picks it with the ground truth, an
  oracle), and SFTMD with the true kernel's code (the non-blind upper bound)."""
  from sfm_jax.tasks.ikc import iterative_correction

  rows = []
  true_code = code_of_sigma(blur_sigma)
  for hr, lr, _, row in _sr_cases(images, scale, blur_sigma, kernel_size, y_channel,
                                  progress):
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
  oracle-picked step and the true kernel (`summary` from `summarize_sr`)."""
  header = ("blur σ", "bicubic", "predicted", f"{corrections} corr.", "best step*", "true kernel")
  keys = ("bicubic_psnr", "psnr_predicted", "psnr", "psnr_best", "psnr_true_kernel")
  lines = [f"IKC ×{scale}, mean PSNR (dB); *best step picked with the ground truth (IKC's test)",
           "".join(f"{h:>13}" for h in header)]
  for sigma, means in summary.items():
    lines.append(f"{sigma:>13g}" + "".join(f"{means[k]:>13.2f}" for k in keys))
  return "\n".join(lines)

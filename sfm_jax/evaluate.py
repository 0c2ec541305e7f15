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
        _save_png(save_dir / f"{pathlib.Path(name).stem}_sigma{sigma:g}.png", restored)
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


def _save_png(path: pathlib.Path, image: np.ndarray):
  from PIL import Image

  path.parent.mkdir(parents=True, exist_ok=True)
  pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)


# --- super-resolution -------------------------------------------------------------------------

SR_COLUMNS = ("image", "scale", "psnr", "ssim", "bicubic_psnr", "bicubic_ssim")


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


def evaluate_sr(upscale, images: list[tuple[str, np.ndarray]], scale: int,
                y_channel: bool = True, progress: bool = False) -> list[dict]:
  """HR images -> MATLAB-bicubic LR (uint8) -> `upscale` (or None: bicubic only), scored with
  `sr_scores` at crop = scale. Every row also carries the bicubic baseline."""
  rows = []
  for name, image in tqdm(images, desc="images", disable=not progress):
    h, w = image.shape[:2]
    hr = image[:h - h % scale, :w - w % scale].astype(np.float32) / 255.0
    lr = quantize(ops.imresize(hr, scale=1.0 / scale)).astype(np.float32)
    bicubic = quantize(ops.imresize(lr, scale=float(scale)))
    row = {"image": name, "scale": scale}
    row["bicubic_psnr"], row["bicubic_ssim"] = sr_scores(bicubic, hr, scale, y_channel)
    sr = bicubic if upscale is None else quantize(upscale(lr))
    row["psnr"], row["ssim"] = sr_scores(sr, hr, scale, y_channel)
    rows.append(row)
  return rows


def write_sr_reports(out_dir: pathlib.Path, rows: list[dict], scale: int) -> dict:
  """OUT/results.csv (one row per image) and OUT/summary.json (means); returns the means."""
  out_dir.mkdir(parents=True, exist_ok=True)
  with open(out_dir / "results.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=SR_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  means = {k: float(np.mean([r[k] for r in rows])) for k in SR_COLUMNS[2:]}
  (out_dir / "summary.json").write_text(json.dumps({"scale": scale, **means}, indent=2))
  return means


def format_sr_table(means: dict, name: str, scale: int, rgb: bool = False) -> str:
  lines = [f"×{scale}, PSNR/SSIM on {'RGB' if rgb else 'Y'}, border crop {scale}, "
           "LR = MATLAB bicubic (uint8)",
           f"{'':>10}{'PSNR':>9}{'SSIM':>8}",
           f"{'bicubic':>10}{means['bicubic_psnr']:>9.2f}{means['bicubic_ssim']:>8.4f}"]
  if name != "bicubic":
    lines.append(f"{name:>10}{means['psnr']:>9.2f}{means['ssim']:>8.4f}")
  return "\n".join(lines)

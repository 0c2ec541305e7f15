"""The SFM denoising test protocol on whole images, with CSV/JSON reports.

For each image and σ: seeded Gaussian noise, noisy = clamp(clean + noise, 0, 1) (optional),
output = clamp(model(noisy), 0, 1), then PSNR (peak 1, whole image), SSIM (the standard 11×11
Gaussian window by default, the test script's 7×7 uniform one with ssim_window="uniform") and the
DCT low/high-band MSE of the SFM test script (majedelhelou/SFM `Denoising/test.py`; see
docs/deviations.md, "Denoising test protocol").
"""

from __future__ import annotations

import csv
import dataclasses
import json
import pathlib

import jax
import numpy as np
from tqdm import tqdm

from sfm_jax import ops
from sfm_jax.data.images import save_png
from sfm_jax.evaluation.pictures import STRIP_IMAGES, plot_psnr_vs_sigma, print_report, write_strip
from sfm_jax.inference import restore_image, tile_context
from sfm_jax.metrics import SSIM_MIN_SIDE, psnr, ssim
from sfm_jax.results import ValidationResult

# The SSIM window: the standard one (Wang et al. 2004; MATLAB `ssim_index`, KAIR, BasicSR) or the
# SFM test script's (skimage's default).
SSIM_WINDOWS = {"gaussian": "Gaussian 11×11 window (σ = 1.5)",
                "uniform": "uniform 7×7 window (the SFM test script's)"}
CSV_COLUMNS = ("image", "sigma", "psnr", "ssim", "noisy_psnr", "dct_low_mse", "dct_high_mse")


@dataclasses.dataclass(frozen=True)
class Protocol:
  """How noisy inputs are made and outputs are scored; printed beside every table."""
  sigmas: tuple[float, ...] = tuple(range(5, 101, 5))
  clip_noisy: bool = True
  seed: int = 0
  self_ensemble: bool = False
  tile: int = 0
  tile_overlap: int = -1  # -1: the model's receptive field (tiles then equal the whole image)
  ssim_window: str = "gaussian"  # "gaussian": 11×11, σ = 1.5; "uniform": 7×7 (SSIM_WINDOWS)
  crop_odd_first: bool = False  # drop the first row / column of odd-sized images

  def __post_init__(self):
    if not self.sigmas or min(self.sigmas) < 0:
      raise ValueError(f"eval.sigmas={self.sigmas}; give noise levels >= 0 on the 0–255 scale, "
                       "e.g. --config.eval.sigmas=15,25,50.")
    if self.tile < 0 or self.tile_overlap < -1:
      raise ValueError("eval.tile must be >= 0 (0: whole images) and eval.tile_overlap >= 0 "
                       "(-1: the model's receptive field).")
    if self.ssim_window not in SSIM_WINDOWS:
      raise ValueError(f"eval.ssim_window={self.ssim_window!r}; use one of {SSIM_WINDOWS}.")

  @classmethod
  def from_config(cls, eval_config, sigmas=None) -> Protocol:
    """The protocol of a denoising `config.eval` (at `sigmas`, default eval.sigmas)."""
    return cls(sigmas=tuple(float(s) for s in (sigmas or eval_config.sigmas)),
               clip_noisy=eval_config.clip_noisy, seed=eval_config.noise_seed,
               self_ensemble=eval_config.self_ensemble, tile=eval_config.tile,
               tile_overlap=eval_config.tile_overlap,
               ssim_window=eval_config.get("ssim_window", "gaussian"),
               crop_odd_first=eval_config.get("crop_odd_first", False))

  def describe(self) -> str:
    clamp = "clamped to [0, 1]" if self.clip_noisy else "not clamped"
    images = ("images cut to even sizes by dropping their first row / column"
              if self.crop_odd_first else "whole images")
    return (f"noise seed {self.seed}, noisy input {clamp}, output clamped, PSNR peak 1 on "
            f"{images}, no border crop, SSIM {SSIM_WINDOWS[self.ssim_window]}"
            + (", ×8 self-ensemble" if self.self_ensemble else ""))


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
  """Runs the protocol; images are (name, uint8 (H, W, C)); `denoise(noisy (1, H, W, C),
  noise_level (1,))` is the model; returns one row per (image, σ) with the CSV_COLUMNS. With
  `save_dir`, writes the outputs there and clean | noisy | output strips of the first images
  beside it (save_dir/../strips)."""
  rows = []
  for index, (name, image) in enumerate(tqdm(images, desc="images", disable=not progress)):
    clean = image.astype(np.float32) / 255.0
    if protocol.crop_odd_first:
      clean = clean[clean.shape[0] % 2:, clean.shape[1] % 2:]
    for sigma in protocol.sigmas:
      noisy = noisy_version(clean, sigma, index, protocol)
      restored = np.clip(restore_image(denoise, noisy, sigma / 255.0, multiple=multiple,
                                       tile=protocol.tile, tile_overlap=protocol.tile_overlap,
                                       self_ensemble=protocol.self_ensemble), 0.0, 1.0)
      low, high = ops.dct_band_mse(restored, clean)
      rows.append({"image": name, "sigma": float(sigma), "psnr": psnr(restored, clean),
                   "ssim": ssim(restored, clean,
                                gaussian_window=protocol.ssim_window == "gaussian"),
                   "noisy_psnr": psnr(noisy, clean),
                   "dct_low_mse": float(low), "dct_high_mse": float(high)})
      if save_dir is not None:
        stem = f"{pathlib.Path(name).stem}_sigma{sigma:g}"
        save_png(save_dir / f"{stem}.png", restored)
        if index < STRIP_IMAGES:
          write_strip(save_dir.parent / "strips" / f"{stem}.png", [
              ("clean", clean), (f"noisy {rows[-1]['noisy_psnr']:.2f} dB", noisy),
              (f"output {rows[-1]['psnr']:.2f} dB", restored)])
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


class DenoiseEvaluator:
  """The denoising protocol of `settings` (a denoising config.eval: sigmas, clip_noisy,
  noise_seed, ...) for a model with card `card`; the model is `denoise(noisy (1, H, W, C),
  noise_level (1,)) -> (1, H, W, C)`."""

  def __init__(self, settings, card):
    protocol = Protocol.from_config(settings)
    self.protocol = dataclasses.replace(
        protocol, tile_overlap=tile_context(protocol.tile_overlap, card))
    self.card = card
    self.min_side = (SSIM_MIN_SIDE[self.protocol.ssim_window == "gaussian"]
                     + self.protocol.crop_odd_first)

  def validate(self, denoise, images) -> ValidationResult:
    """PSNR/SSIM at the first σ of the protocol (training validation sets one: eval.sigma)."""
    sigma = self.protocol.sigmas[0]
    protocol = dataclasses.replace(self.protocol, sigmas=(sigma,))
    m = summarize(evaluate_images(denoise, images, protocol, self.card.size_multiple))[sigma]
    return ValidationResult.comparison(f"σ={sigma:g}", ("noisy", "denoised"), m["noisy_psnr"],
                                       m["psnr"], m["ssim"])

  def run(self, denoise, images, output: pathlib.Path, source: str, dataset: str,
          save_images: bool = False, compare: tuple[str, ...] = ()) -> dict:
    """eval.py: every σ; OUT/results.csv, OUT/summary.json, and OUT/psnr_vs_sigma.png with the
    models of the `compare` folders (earlier eval.py outputs) and their differences to the
    first of them. Returns the means per σ."""
    rows = evaluate_images(denoise, images, self.protocol, self.card.size_multiple,
                           output / "images" if save_images else None, progress=True)
    summary = summarize(rows)
    write_reports(output, rows, summary, self.protocol)
    print_report(source, dataset, images, format_table(summary, self.protocol), output)
    curves = {_label(folder): _psnr_by_sigma(folder) for folder in map(pathlib.Path, compare)}
    curves[_label(output, self.card.name)] = {s: m["psnr"] for s, m in summary.items()}
    plot_psnr_vs_sigma(curves, output / "psnr_vs_sigma.png")
    print(f"PSNR against σ: {output / 'psnr_vs_sigma.png'}")
    return summary


def _label(folder: pathlib.Path, model_name: str = "") -> str:
  """A run's name in the plots: its output folder's, or the model's for the default eval/."""
  name = folder.resolve().name
  return model_name if model_name and name == "eval" else name


def _psnr_by_sigma(folder: pathlib.Path) -> dict[float, float]:
  """{σ: mean PSNR} of an earlier denoising eval.py output folder."""
  report = json.loads((folder / "summary.json").read_text())
  if "per_sigma" not in report:
    raise ValueError(f"--compare {folder}: its summary.json is not a denoising evaluation; "
                     "compare denoisers with denoisers.")
  return {float(s): m["psnr"] for s, m in report["per_sigma"].items()}

"""The Fluorescence Microscopy Denoising (FMD) benchmark as the SFM release runs it on its
Noise2Noise / Noise2Self U-Nets (majedelhelou/SFM `Denoising/Microscopy/benchmark.py` and
`utils/data_loader.py`; the data of Zhang et al., "A Poisson-Gaussian Denoising Dataset with
Real Fluorescence Microscopy Images", CVPR 2019).

The folder layout is the dataset's: ROOT/<group>/{raw, avg2, avg4, avg8, avg16}/<fov>/*.png,
with the ground truth ROOT/<group>/gt/<fov>/avg50.png (the mean of 50 raw captures). Noise level
N is the mean of N raw captures (raw: N = 1). The test set is field of view 19 of every group,
all its captures; each 512×512 capture is cut into its four corner crops of 256 (torchvision
`FiveCrop` less the centre one), and each crop is denoised on its own. The network sees x − 0.5
(the release's `x/255 − 0.5`; here the U-Net's `input_offset`), its output is clamped to the
image range, and PSNR (peak 255 on the 0–255 scale, i.e. peak 1 here) and SSIM (7×7 uniform
window, skimage's) are computed per crop and averaged per group and noise level.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
from tqdm import tqdm

from sfm_jax.data.images import image_files, read_image
from sfm_jax.errors import DataError
from sfm_jax.inference import restore_image
from sfm_jax.metrics import psnr, ssim

# The 12 groups of FMD (benchmark.py's `types`) and its noise levels (captures averaged).
GROUPS = ("TwoPhoton_BPAE_R", "TwoPhoton_BPAE_G", "TwoPhoton_BPAE_B", "TwoPhoton_MICE",
          "Confocal_MICE", "Confocal_BPAE_R", "Confocal_BPAE_G", "Confocal_BPAE_B",
          "Confocal_FISH", "WideField_BPAE_R", "WideField_BPAE_G", "WideField_BPAE_B")
NOISE_LEVELS = (1, 2, 4, 8, 16)
LEVEL_FOLDERS = {1: "raw", 2: "avg2", 4: "avg4", 8: "avg8", 16: "avg16"}


@dataclasses.dataclass(frozen=True)
class FMDProtocol:
  """Which captures are scored, and how they are cut."""
  noise_levels: tuple[int, ...] = NOISE_LEVELS
  test_fov: int = 19
  crop: int = 256

  def describe(self) -> str:
    return (f"FMD field of view {self.test_fov}, noise levels {list(self.noise_levels)} "
            f"(captures averaged), four corner crops of {self.crop} per capture denoised "
            "separately, output clamped, PSNR peak 255 and SSIM (7×7 uniform) per crop")


@dataclasses.dataclass(frozen=True)
class Capture:
  """One noisy capture of the test field of view and its ground truth, uint8 (H, W, 1)."""
  group: str
  level: int
  name: str
  noisy: np.ndarray
  clean: np.ndarray


def load_test_set(root: str | pathlib.Path, protocol: FMDProtocol = FMDProtocol()
                  ) -> list[Capture]:
  """Every capture of the test field of view, for each group found under `root` and each
  noise level; DataError naming what is missing."""
  root = pathlib.Path(root)
  groups = [g for g in GROUPS if (root / g).is_dir()]
  if not groups:
    raise DataError(f"{root} holds none of the FMD groups ({', '.join(GROUPS[:3])}, …); give "
                    "the folder that the FMD archive unpacks to (--dataset).")
  captures = []
  for group in groups:
    truth = root / group / "gt" / str(protocol.test_fov) / "avg50.png"
    if not truth.is_file():
      raise DataError(f"{truth} is missing: an FMD group needs gt/<fov>/avg50.png.")
    clean = read_image(truth, 1)
    for level in protocol.noise_levels:
      folder = root / group / LEVEL_FOLDERS[level] / str(protocol.test_fov)
      if not folder.is_dir():
        raise DataError(f"{folder} is missing: FMD noise level {level} of {group}.")
      captures += [Capture(group, level, path.name, read_image(path, 1), clean)
                   for path in image_files(folder)]
  return captures


def corner_crops(image: np.ndarray, size: int) -> list[np.ndarray]:
  """The top-left, top-right, bottom-left and bottom-right size×size crops of (H, W, C)."""
  h, w = image.shape[:2]
  if h < size or w < size:
    raise DataError(f"an FMD capture of {h}×{w} is smaller than the {size}-pixel crops.")
  return [image[:size, :size], image[:size, w - size:], image[h - size:, :size],
          image[h - size:, w - size:]]


def score_captures(denoise, captures: list[Capture], protocol: FMDProtocol,
                   multiple: int = 1, progress: bool = False) -> list[dict]:
  """One row per capture and crop: group, level, image, crop, psnr, ssim, noisy_psnr."""
  rows = []
  for capture in tqdm(captures, desc="captures", disable=not progress):
    pairs = zip(corner_crops(capture.noisy.astype(np.float32) / 255, protocol.crop),
                corner_crops(capture.clean.astype(np.float32) / 255, protocol.crop), strict=True)
    for index, (noisy, clean) in enumerate(pairs):
      restored = np.clip(restore_image(denoise, noisy, 0.0, multiple=multiple), 0.0, 1.0)
      rows.append({"group": capture.group, "level": capture.level, "image": capture.name,
                   "crop": index, "psnr": psnr(restored, clean), "ssim": ssim(restored, clean),
                   "noisy_psnr": psnr(noisy, clean)})
  return rows


def summarize(rows: list[dict]) -> dict[str, dict]:
  """Means per (level, group), keyed as the release's results_gpu.txt (`noise1_Confocal_MICE`)."""
  out = {}
  for level in sorted({r["level"] for r in rows}):
    for group in [g for g in GROUPS if any(r["group"] == g for r in rows)]:
      cell = [r for r in rows if r["level"] == level and r["group"] == group]
      if cell:
        out[f"noise{level}_{group}"] = {
            "noise": level, "type": group, "samples": len(cell),
            **{k: float(np.mean([r[k] for r in cell])) for k in ("psnr", "ssim", "noisy_psnr")}}
  return out


def format_table(summary: dict, protocol: FMDProtocol) -> str:
  """PSNR per group (rows) and noise level (columns), and the mean over groups."""
  levels = sorted({m["noise"] for m in summary.values()})
  groups = list(dict.fromkeys(m["type"] for m in summary.values()))
  lines = [f"Protocol: {protocol.describe()}.",
           f"{'group':<20}" + "".join(f"{f'N={n}':>8}" for n in levels)]
  for group in groups:
    lines.append(f"{group:<20}" + "".join(f"{summary[f'noise{n}_{group}']['psnr']:>8.2f}"
                                          for n in levels))
  means = [np.mean([summary[f"noise{n}_{g}"]["psnr"] for g in groups]) for n in levels]
  lines.append(f"{'mean':<20}" + "".join(f"{m:>8.2f}" for m in means))
  return "\n".join(lines)


class FMDEvaluator:
  """The FMD benchmark for a denoiser `denoise(noisy (1, H, W, 1), level) -> (1, H, W, 1)` on
  [0, 1] images (eval.py only: its `dataset` is the FMD root folder)."""

  def __init__(self, settings, card):
    del settings  # the benchmark's settings are fixed (FMDProtocol)
    self.protocol = FMDProtocol()
    self.card = card

  def run(self, denoise, captures: list[Capture], output: pathlib.Path, source: str,
          dataset: str, save_images: bool = False, compare: tuple[str, ...] = ()) -> dict:
    """Scores every capture; writes OUT/results.json (the release's results_gpu.txt layout)
    and OUT/results_per_crop.json; returns the means per level and group."""
    del save_images, compare  # not offered for FMD
    rows = score_captures(denoise, captures, self.protocol, self.card.size_multiple,
                          progress=True)
    summary = summarize(rows)
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(summary, indent=2))
    (output / "results_per_crop.json").write_text(json.dumps(rows))
    print(f"{source} on {dataset} ({len(captures)} captures)")
    print(format_table(summary, self.protocol))
    print(f"Results: {output / 'results.json'} (per crop: results_per_crop.json)")
    return summary

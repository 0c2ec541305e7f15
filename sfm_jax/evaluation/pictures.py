"""What eval.py draws: PSNR against σ for one or several denoisers (with their differences to
the first, the SFM paper's figure), and side-by-side strips of crops at full resolution."""

from __future__ import annotations

import pathlib

import numpy as np

from sfm_jax.data.images import center_crop

STRIP_IMAGES = 3  # strips are written for the first few images of a test set
STRIP_CROP = 192  # crop side in output pixels


def plot_psnr_vs_sigma(curves: dict[str, dict[float, float]], path: pathlib.Path):
  """Mean PSNR against noise σ, one line per model ({label: {σ: PSNR}}); with two or more
  models a lower panel shows each one's PSNR minus the first model's at their common σs."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rows = 2 if len(curves) > 1 else 1
  fig, axes = plt.subplots(rows, 1, figsize=(6, 3.2 * rows), sharex=True, squeeze=False,
                           gridspec_kw={"height_ratios": [2, 1][:rows]})
  top, colours = axes[0, 0], {}
  for label, psnrs in curves.items():
    sigmas = sorted(psnrs)
    (line,) = top.plot(sigmas, [psnrs[s] for s in sigmas], marker="o", ms=3, label=label)
    colours[label] = line.get_color()
  top.set(ylabel="PSNR (dB)", title="Denoising: PSNR against noise level")
  top.grid(alpha=0.3)
  top.legend(fontsize=8)
  if rows == 2:
    (base_label, base), bottom = next(iter(curves.items())), axes[1, 0]
    for label, psnrs in list(curves.items())[1:]:
      common = sorted(set(psnrs) & set(base))
      bottom.plot(common, [psnrs[s] - base[s] for s in common], marker="o", ms=3,
                  color=colours[label])
    bottom.axhline(0, color="gray", lw=0.8)
    bottom.set(ylabel=f"Δ PSNR vs {base_label} (dB)")
    bottom.grid(alpha=0.3)
  axes[-1, 0].set(xlabel="noise σ (0–255)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write_strip(path: pathlib.Path, panels: list[tuple[str, np.ndarray]],
                size: int = STRIP_CROP):
  """One PNG of the panels' central crops side by side at full resolution, each labelled
  underneath; panels are (label, (H, W, C) image in [0, 1]) of one size."""
  from PIL import Image, ImageDraw

  crops = [np.round(np.clip(center_crop(np.asarray(image), size), 0, 1) * 255).astype(np.uint8)
           for _, image in panels]
  h, w = crops[0].shape[:2]
  gap, label_height = 4, 18
  canvas = Image.new("RGB", (len(crops) * (w + gap) - gap, h + label_height), "white")
  draw = ImageDraw.Draw(canvas)
  for i, ((label, _), crop) in enumerate(zip(panels, crops, strict=True)):
    tile = Image.fromarray(crop[..., 0] if crop.shape[-1] == 1 else crop).convert("RGB")
    canvas.paste(tile, (i * (w + gap), 0))
    draw.text((i * (w + gap) + 3, h + 3), label, fill="black")
  path.parent.mkdir(parents=True, exist_ok=True)
  canvas.save(path)


def print_report(source: str, dataset: str, images, table: str, output: pathlib.Path):
  """eval.py's printed report: the model and data, the table, where the rows are."""
  print(f"{source} on {dataset} ({len(images)} images)")
  print(table)
  print(f"Per-image results: {output / 'results.csv'}")

"""NIQE: `sfm_jax.niqe.niqe` against BasicSR's `calculate_niqe` (the independent reference that its
authors report equal to the MATLAB release to 1e-4), values and speed, in this process.

Scores the colour Set14 images (on the Y of MATLAB rgb2ycbcr, as the SR papers do) and a few of
scikit-image's photos with both implementations and prints each pair, their difference and the
seconds per megapixel of each (median of --repeats runs). BasicSR's metric files need
`pip install --no-deps basicsr-fixed==1.4.2 opencv-python-headless` and torch.

  python benchmarks/niqe.py [--set14 ../shared/data/CSet14] [--repeats 3]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np
from _machine import cpu_model  # this folder is on sys.path when run as a script
from PIL import Image
from skimage import data

from sfm_jax.niqe import niqe

ROOT = pathlib.Path(__file__).resolve().parents[1]
SET14 = ("baboon", "barbara", "bridge", "coastguard", "comic", "lenna", "monarch", "zebra")
PHOTOS = ("camera", "astronaut", "coffee", "chelsea")


def images(set14: pathlib.Path) -> dict[str, np.ndarray]:
  """{name: uint8 image}: the Set14 images found in `set14`, then scikit-image's photos."""
  found = {f"Set14 {name}": np.asarray(Image.open(set14 / f"{name}.png").convert("RGB"))
           for name in SET14 if (set14 / f"{name}.png").is_file()}
  return found | {f"scikit-image {name}": getattr(data, name)() for name in PHOTOS}


def seconds(score, image: np.ndarray, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    score(image)
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--set14", default=str(ROOT.parent / "shared" / "data" / "CSet14"),
                      help="Folder of the colour Set14 PNGs (skipped where absent).")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  sys.path.insert(0, str(ROOT / "tests"))
  from reference_niqe import basicsr_niqe

  reference = basicsr_niqe()
  print(f"machine: {cpu_model()}; numpy {np.__version__}")
  print("| image | size | sfm-jax | BasicSR | |difference| | s/MP sfm-jax | s/MP BasicSR |")
  print("|---|---|---|---|---|---|---|")
  ours_rate, theirs_rate = [], []
  for name, image in images(pathlib.Path(args.set14)).items():
    megapixels = image.shape[0] * image.shape[1] / 1e6
    ours, theirs = niqe(image), reference(image)
    ours_rate.append(seconds(niqe, image, args.repeats) / megapixels)
    theirs_rate.append(seconds(reference, image, args.repeats) / megapixels)
    print(f"| {name} | {image.shape[1]}×{image.shape[0]} | {ours:.4f} | {theirs:.4f} | "
          f"{abs(ours - theirs):.4f} | {ours_rate[-1]:.2f} | {theirs_rate[-1]:.2f} |")
  ours_rate, theirs_rate = np.median(ours_rate), np.median(theirs_rate)
  print(f"median seconds per megapixel: sfm-jax {ours_rate:.2f}, BasicSR {theirs_rate:.2f} "
        f"(ratio {ours_rate / theirs_rate:.2f})")


if __name__ == "__main__":
  main()

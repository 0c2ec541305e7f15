"""NIQE: `sfm_jax.niqe.niqe` against BasicSR's `calculate_niqe` (the independent reference that its
authors report equal to the MATLAB release to 1e-4), values and speed, in this process.

Scores the colour Set14 images (on the Y of MATLAB rgb2ycbcr, as the SR papers do) and a few of
scikit-image's photos with both implementations and prints each pair, their difference and the
seconds per megapixel of each (median of --repeats runs). BasicSR's metric files need
`pip install --no-deps basicsr-fixed==1.4.2 opencv-python-headless` and torch.

  python benchmarks/niqe.py [--set14 ../shared/data/CSet14] [--repeats 3] [--out runs/niqe]

With --out, also writes OUT/niqe.csv (one row per image) and OUT/machine.txt, from which
`studies/docs_tables.py --niqe OUT` regenerates the table of docs/reproduction.md.
"""

from __future__ import annotations

import argparse
import csv
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
  parser.add_argument("--out", help="Folder for niqe.csv and machine.txt (optional).")
  args = parser.parse_args()
  sys.path.insert(0, str(ROOT / "tests"))
  from reference_niqe import basicsr_niqe

  reference = basicsr_niqe()
  machine = f"machine: {cpu_model()}; numpy {np.__version__}; {args.repeats} repeat(s)"
  print(machine)
  print("| image | size | sfm-jax | BasicSR | |difference| | s/MP sfm-jax | s/MP BasicSR |")
  print("|---|---|---|---|---|---|---|")
  rows = []
  for name, image in images(pathlib.Path(args.set14)).items():
    megapixels = image.shape[0] * image.shape[1] / 1e6
    row = {"image": name, "width": image.shape[1], "height": image.shape[0],
           "sfm_jax": niqe(image), "basicsr": reference(image),
           "s_per_mp_sfm_jax": seconds(niqe, image, args.repeats) / megapixels,
           "s_per_mp_basicsr": seconds(reference, image, args.repeats) / megapixels}
    rows.append(row)
    print(f"| {name} | {row['width']}×{row['height']} | {row['sfm_jax']:.4f} | "
          f"{row['basicsr']:.4f} | {abs(row['sfm_jax'] - row['basicsr']):.4f} | "
          f"{row['s_per_mp_sfm_jax']:.2f} | {row['s_per_mp_basicsr']:.2f} |")
  ours_rate, theirs_rate = (np.median([r[k] for r in rows])
                            for k in ("s_per_mp_sfm_jax", "s_per_mp_basicsr"))
  print(f"median seconds per megapixel: sfm-jax {ours_rate:.2f}, BasicSR {theirs_rate:.2f} "
        f"(ratio {ours_rate / theirs_rate:.2f})")
  if args.out:
    write_results(pathlib.Path(args.out), rows, machine)


def write_results(out: pathlib.Path, rows: list[dict], machine: str):
  """OUT/niqe.csv (the printed rows) and OUT/machine.txt (the machine line)."""
  out.mkdir(parents=True, exist_ok=True)
  with open(out / "niqe.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  (out / "machine.txt").write_text(machine.removeprefix("machine: ") + "\n")


if __name__ == "__main__":
  main()

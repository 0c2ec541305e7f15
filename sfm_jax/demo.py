"""A tour of `sfm_jax.ops` on scikit-image's bundled photos (no download, CPU is enough).

  python -m sfm_jax.demo [--out DIR] [--seed 0]

Prints what each op does to real images: SFM's dropped DCT fraction per mode (against the mean
fractions of the original `utils_SFM.py` masks on 64×64 patches, column "orig."), AWGN and its
DCT-band error, MATLAB-bicubic ×4 and Haar round trips. With --out, writes PNGs of an SFM'd
batch.
"""

from __future__ import annotations

import argparse
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from skimage import data

from sfm_jax import ops
from sfm_jax.metrics import psnr, quantize, sr_scores

# Mean dropped fractions of the original `utils_SFM.py` masks on 64×64 (closed form, checked by
# tests/test_masks.py; targeted: radius 0.85, sigma 0.15).
SPEC_DROPPED = {"random": 0.5, "central": 0.4167, "targeted": 0.1807}


def _patches(image: np.ndarray, key: jax.Array, count: int, size: int) -> jax.Array:
  """`count` random size×size crops of an (H, W) image, (count, size, size, 1)."""
  rows = jax.random.randint(key, (count,), 0, image.shape[0] - size)
  cols = jax.random.randint(jax.random.fold_in(key, 1), (count,), 0, image.shape[1] - size)
  crop = lambda r, c: jax.lax.dynamic_slice(jnp.asarray(image), (r, c), (size, size))  # noqa: E731
  return jax.vmap(crop)(rows, cols)[..., None]


def _save_grid(path: pathlib.Path, batch: jax.Array):
  from PIL import Image

  tiles = np.clip(np.asarray(batch[:8, :, :, 0]), 0, 1)
  Image.fromarray((np.concatenate(list(tiles), axis=1) * 255).round().astype(np.uint8)).save(path)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", type=pathlib.Path, default=None, help="folder for PNGs")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  key = jax.random.key(args.seed)
  camera = data.camera().astype(np.float32) / 255.0
  batch = _patches(camera, key, 2048, 64)
  print(f"{len(batch)} random 64×64 patches of skimage's 'camera' photo\n")

  print(f"{'SFM mode':<10}{'dropped DCT fraction':>22}{'orig.':>8}{'PSNR vs clean':>16}")
  for i, mode in enumerate(SPEC_DROPPED):
    masked, masks = ops.apply_sfm(jax.random.fold_in(key, 10 + i), batch, rate=1.0, mode=mode)
    dropped = 1 - float(masks.mean())
    print(f"{mode:<10}{dropped:>22.4f}{SPEC_DROPPED[mode]:>8.4f}{psnr(masked, batch):>13.2f} dB")
    if args.out is not None:
      args.out.mkdir(parents=True, exist_ok=True)
      _save_grid(args.out / f"sfm_{mode}.png", masked)

  noisy, _ = ops.add_awgn(jax.random.fold_in(key, 20), batch, 25.0, clip=True)
  low, high = ops.dct_band_mse(noisy, batch)
  print(f"\nAWGN σ=25 (clipped): PSNR {psnr(noisy, batch):.2f} dB; DCT-band MSE low "
        f"{float(low.mean()):.2e}, high {float(high.mean()):.2e}")

  rgb = jnp.asarray(data.astronaut().astype(np.float32) / 255.0)
  lr = quantize(ops.imresize(rgb, scale=0.25)).astype(np.float32)
  up = quantize(ops.imresize(lr, scale=4.0))
  y_psnr, _ = sr_scores(up, rgb, crop=4)
  print(f"MATLAB-bicubic ×4 down/up of 'astronaut': PSNR on Y (crop 4) {y_psnr:.2f} dB")
  bands = ops.haar_dwt(rgb)
  error = float(jnp.abs(ops.haar_idwt(bands) - rgb).max())
  print(f"Haar DWT: LL energy share {float(jnp.sum(bands[0]**2) / jnp.sum(rgb**2)):.4f}, "
        f"round-trip max error {error:.1e}")


if __name__ == "__main__":
  main()

"""SFM on a training batch: jitted `ops.apply_sfm` + `ops.apply_masks` vs the authors' loop.

The reference is the SFM authors' per-image numpy/scipy loop (majedelhelou/SFM
`Denoising/train.py` with DCT_DOR=0.5, SFM_mode=2, rad 0.85, sigma 0.15, SFM_noise=1, and
`random_drop` from `Denoising/utils_SFM.py`), rewritten here after that code: Bernoulli
selection per image, a Python-`random` band per selected image, scipy.fftpack DCTs channel by
channel, the same mask applied to the noise. Both run in this process on the same
batches; the script prints the medians and the ratio.

  python benchmarks/sfm_ops.py [--repeats 100]
"""

from __future__ import annotations

import argparse
import random
import time

import jax
import jax.numpy as jnp
import numpy as np
from _machine import machine_line  # this folder is on sys.path when run as a script
from scipy.fftpack import dct, idct

from sfm_jax import ops, xla_cpu

SHAPES = [(128, 64, 64, 1), (16, 128, 128, 3)]


def _dct2(x):
  return dct(dct(x, axis=0, norm="ortho"), axis=1, norm="ortho")


def _idct2(x):
  return idct(idct(x, axis=0, norm="ortho"), axis=1, norm="ortho")


def _targeted_mask(h, w, radius_perc, sigma_perc):
  radius = np.sqrt(h * h + w * w)
  x, y = np.meshgrid(np.linspace(0, w - 1, w), np.linspace(0, h - 1, h))
  d = np.sqrt(x * x + y * y)
  center, sigma = radius_perc * radius, sigma_perc * radius
  a1 = center - abs(random.gauss(0, sigma))
  a2 = center + abs(random.gauss(0, sigma))
  mask = np.ones((h, w))
  mask[(d > a1) & (d < a2)] = 0
  return mask


def authors_loop(images, noise, rate=0.5, radius_perc=0.85, sigma_perc=0.15):
  """images, noise: (B, C, H, W) float32 numpy, as the PyTorch tensors of the original."""
  batch, channels, h, w = images.shape
  images_sfm = np.zeros_like(images)
  noise_sfm = np.zeros_like(noise)
  selected = np.random.choice([1, 0], size=batch, p=[rate, 1 - rate])  # noqa: NPY002 (as theirs)
  for idx in np.nonzero(selected)[0]:
    mask = _targeted_mask(h, w, radius_perc, sigma_perc)
    for c in range(channels):
      images_sfm[idx, c] = _idct2(_dct2(images[idx, c]) * mask)
      noise_sfm[idx, c] = _idct2(_dct2(noise[idx, c]) * mask)
  return images_sfm, noise_sfm


@jax.jit
def sfm_image_and_noise(key, images, noise):
  """The loop's work: SFM on the images, then the same masks on the given noise batch."""
  masked, masks = ops.apply_sfm(key, images, rate=0.5, mode="targeted", radius_perc=0.85,
                                sigma_perc=0.15)
  return masked, ops.apply_masks(noise, masks)


def blocked_medians(fns, repeats, rounds=5):
  """Median seconds of each fn: `rounds` alternating blocks of repeats/rounds back-to-back calls
  (warm caches and thread pools, as inside a training loop; drift hits every fn alike)."""
  for fn in fns:
    fn()  # warm-up (and compilation)
  times = [[] for _ in fns]
  for _ in range(rounds):
    for fn, bucket in zip(fns, times, strict=True):
      for _ in range(max(1, repeats // rounds)):
        start = time.perf_counter()
        fn()
        bucket.append(time.perf_counter() - start)
  return [float(np.median(t)) for t in times]


def compare(shape, repeats, rng):
  """(loop seconds, sfm-jax seconds) on one random batch of `shape` (B, H, W, C)."""
  images = rng.random(shape, dtype=np.float32)
  noise = rng.normal(scale=25 / 255, size=shape).astype(np.float32)
  images_nchw, noise_nchw = images.transpose(0, 3, 1, 2), noise.transpose(0, 3, 1, 2)
  x, n = jnp.asarray(images), jnp.asarray(noise)
  keys = iter(jax.random.split(jax.random.key(0), repeats + 10))
  np.random.seed(0)  # noqa: NPY002 (the authors' loop draws from numpy's global RNG)
  random.seed(0)
  return blocked_medians(
      [lambda: authors_loop(images_nchw, noise_nchw),
       lambda: jax.block_until_ready(sfm_image_and_noise(next(keys), x, n))], repeats)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=100)
  args = parser.parse_args()
  xla_cpu.enable()  # before JAX starts; SFM_JAX_YNNPACK=0 for XLA's own kernels
  print(machine_line())
  print("SFM rate 0.5, targeted 0.85/0.15, image + noise; medians over "
        f"{args.repeats} batches")
  print(f"{'batch (B,H,W,C)':<20}{'authors loop':>14}{'sfm-jax':>12}{'speed-up':>10}")
  rng = np.random.default_rng(0)
  for shape in SHAPES:
    loop, ours = compare(shape, args.repeats, rng)
    print(f"{str(shape):<20}{loop * 1e3:>11.2f} ms{ours * 1e3:>9.2f} ms{loop / ours:>9.1f}x")


if __name__ == "__main__":
  main()

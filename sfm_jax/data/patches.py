"""Training patches on the host, as SFM's `prepare_data`: multi-scale, a strided grid of patches,
and dihedral copies (majedelhelou/SFM `Denoising/dataset.py`). Patches stay uint8; scaling to
[0, 1] happens on device."""

from __future__ import annotations

import numpy as np

from sfm_jax.errors import DataError
from sfm_jax.ops.resize import resize_matrix


def rescale_uint8(image: np.ndarray, scale: float) -> np.ndarray:
  """OpenCV-style bicubic (a = −0.75, no antialias) to int(size·scale), re-quantised to uint8,
  as the SFM authors' `cv2.resize(..., INTER_CUBIC)`; another resizer would change the training
  data (`docs/deviations.md`, "Training-patch rescaling")."""
  if scale == 1:
    return image
  h, w = image.shape[:2]
  return resize_uint8(image, int(h * scale), int(w * scale))


def resize_uint8(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
  """uint8 (H, W, C) -> uint8 (out_h, out_w, C) by `rescale_uint8`'s OpenCV-style bicubic."""
  h, w = image.shape[:2]
  mh = resize_matrix(h, out_h, out_h / h, False, -0.75, "clamp")
  mw = resize_matrix(w, out_w, out_w / w, False, -0.75, "clamp")
  rows = np.tensordot(mh, image.astype(np.float64), axes=(1, 0))  # (out_h, W, C)
  out = np.tensordot(mw, rows, axes=(1, 1)).transpose(1, 0, 2)  # (out_h, out_w, C)
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def grid_patches(image: np.ndarray, size: int, stride: int) -> np.ndarray:
  """size×size patches with top-left corners on a stride grid, row-major, (N, size, size, C)."""
  h, w = image.shape[:2]
  return np.stack([image[i:i + size, j:j + size]
                   for i in range(0, h - size + 1, stride)
                   for j in range(0, w - size + 1, stride)])


def dihedral(x, mode: int, xp=np):
  """SFM's `data_augmentation` on (..., H, W, C): 0 identity, 1 flipud, 2 rot90, 3 rot90+flipud,
  4 rot180, 5 rot180+flipud, 6 rot270, 7 rot270+flipud. `xp=jnp` for device arrays."""
  rotated = xp.rot90(x, k=mode // 2, axes=(-3, -2))
  return xp.flip(rotated, axis=-3) if mode % 2 else rotated


def build_patches(images: list[tuple[str, np.ndarray]], size: int, stride: int,
                  scales=(1.0,), aug_copies: int = 0, seed: int = 0) -> np.ndarray:
  """All training patches of `images`, uint8 (N, size, size, C).

  For each image, each scale and each grid patch: the patch, then `aug_copies` copies with a
  random dihedral mode in 1..7 (SFM: scales 1/0.9/0.8/0.7, stride 32, one copy).
  """
  rng = np.random.default_rng(seed)
  out = []
  for name, image in images:
    if min(image.shape[:2]) < size:
      raise DataError(f"image {name} is {image.shape[0]}×{image.shape[1]}, smaller than the "
                      f"{size}×{size} training patch; lower data.patch_size or remove it.")
    for scale in scales:
      scaled = rescale_uint8(image, scale)
      if min(scaled.shape[:2]) < size:
        continue
      for patch in grid_patches(scaled, size, stride):
        out.append(patch)
        out.extend(dihedral(patch, int(m)) for m in rng.integers(1, 8, size=aug_copies))
  return np.ascontiguousarray(np.stack(out))

"""Image sources -> lists of uint8 (H, W, C) arrays: built-in photos, folders, TFDS datasets.

Every user mistake (missing or empty folder, unreadable file, unknown source) raises DataError
with one sentence that names the fix.
"""

from __future__ import annotations

import pathlib

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# scikit-image's bundled photos: the zero-setup default data. "val" is held out from "train".
BUILTIN = {
    "train": ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "brick",
              "gravel", "grass", "coins", "page", "text", "hubble_deep_field"),
    "val": ("camera", "moon", "clock"),
}


class DataError(ValueError):
  """A problem with the user's data or data settings."""


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
  """uint8 (H, W) / (H, W, 1|3|4) -> (H, W, channels); gray = ITU-R 601 luma (PIL's 'L')."""
  image = np.asarray(image)
  if image.dtype == bool:
    image = image.astype(np.uint8) * 255
  if image.dtype != np.uint8:
    image = np.clip(np.round(image * (255 if image.max() <= 1 else 1)), 0, 255).astype(np.uint8)
  if image.ndim == 2:
    image = image[:, :, None]
  image = image[:, :, :3]  # drop alpha
  if image.shape[-1] == channels:
    return image
  if channels == 1:
    luma = image.astype(np.float64) @ np.array([299, 587, 114]) / 1000
    return np.round(luma).astype(np.uint8)[:, :, None]
  if channels == 3 and image.shape[-1] == 1:
    return np.repeat(image, 3, axis=-1)
  raise DataError(f"cannot convert a {image.shape[-1]}-channel image to {channels} channels; "
                  "set data.channels to 1 (gray) or 3 (colour).")


def load_builtin(split: str, channels: int) -> list[tuple[str, np.ndarray]]:
  """scikit-image's bundled photos ("train" or "val" split), no download needed."""
  from skimage import data

  if split not in BUILTIN:
    raise DataError(f"unknown built-in split {split!r}; use 'train' or 'val'.")
  return [(name, to_channels(getattr(data, name)(), channels)) for name in BUILTIN[split]]


def load_folder(folder: str | pathlib.Path, channels: int) -> list[tuple[str, np.ndarray]]:
  """Every PNG/JPEG/BMP/TIFF image in `folder` (sorted by name, not recursive)."""
  from PIL import Image, UnidentifiedImageError

  folder = pathlib.Path(folder).expanduser()
  if not folder.is_dir():
    raise DataError(f"image folder {folder} does not exist; pass an existing folder or "
                    "'builtin' for the bundled sample photos.")
  files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
  if not files:
    raise DataError(f"image folder {folder} has no {'/'.join(IMAGE_SUFFIXES)} images; "
                    "point to the folder that holds the images themselves.")
  images = []
  for path in files:
    try:
      with Image.open(path) as image:
        images.append((path.name, to_channels(np.asarray(image.convert("RGB")
                                                         if image.mode == "P" else image),
                                              channels)))
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
      raise DataError(f"cannot read image {path} ({error.__class__.__name__}); remove or "
                      "replace the corrupt file.") from None
  return images


def load_tfds(name: str, split: str, channels: int, data_dir: str | None = None,
              image_key: str | None = None) -> list[tuple[str, np.ndarray]]:
  """Images of a TFDS dataset (any dataset with an image feature), read once into memory."""
  import tensorflow_datasets as tfds

  try:
    dataset, info = tfds.load(name, split=split, data_dir=data_dir, with_info=True,
                              try_gcs=False)
  except Exception as error:  # tfds raises many types for unknown or unprepared datasets
    raise DataError(f"cannot load TFDS dataset {name!r} split {split!r} ({error}); build it "
                    "first with `tfds build` or check the name.") from None
  keys = [k for k, f in info.features.items() if isinstance(f, tfds.features.Image)]
  key = image_key or (keys[0] if keys else None)
  if key is None:
    raise DataError(f"TFDS dataset {name!r} has no image feature; pick a dataset with one.")
  return [(f"{name}[{i}]", to_channels(example[key], channels))
          for i, example in enumerate(tfds.as_numpy(dataset))]


def load_source(source: str, split: str, channels: int,
                data_dir: str | None = None) -> list[tuple[str, np.ndarray]]:
  """Resolves a source string: "builtin", "tfds:NAME[:SPLIT]", or an image folder path."""
  if source == "builtin":
    return load_builtin(split, channels)
  if source.startswith("tfds:"):
    name, _, tfds_split = source[5:].partition(":")
    return load_tfds(name, tfds_split or split, channels, data_dir)
  return load_folder(source, channels)


def save_png(path: pathlib.Path, image: np.ndarray):
  """Writes an (H, W, C) image in [0, 1] as an 8-bit PNG (creating the folder)."""
  from PIL import Image

  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)


def crop_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
  """uint8 (H, W, C) -> float32 (H', W', C) in [0, 1], H' and W' cropped down to multiples of
  `multiple` (the SR papers' "modcrop")."""
  h, w = image.shape[:2]
  return image[:h - h % multiple, :w - w % multiple].astype(np.float32) / 255.0

"""Image sources -> lists of uint8 (H, W, C) arrays: built-in photos, folders, TFDS datasets.

Every user mistake (missing or empty folder, unreadable file, unknown source) raises DataError
with one sentence that names the fix.
"""

from __future__ import annotations

import pathlib

import numpy as np

from sfm_jax.data.photos import pixel_values, read_photo
from sfm_jax.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# scikit-image's bundled photos: the zero-setup default data. "val" is held out from "train".
BUILTIN = {
    "train": ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "brick",
              "gravel", "grass", "coins", "page", "text", "hubble_deep_field"),
    "val": ("camera", "moon", "clock"),
}


def to_uint8(image: np.ndarray, name: str = "an image") -> np.ndarray:
  """Any image array -> uint8 with the same content, by the file reader's rules
  (`photos.pixel_values`: bool is 0/255, 16-bit is rescaled from 0–65535, float is read as
  [0, 1]); DataError naming `name` for values whose scale is unknown."""
  image = np.asarray(image)
  if image.dtype == np.uint8:
    return image
  return np.round(pixel_values(image, name)[0] * 255).astype(np.uint8)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
  """An image (H, W) / (H, W, 1|3|4) of any `to_uint8` type -> uint8 (H, W, channels); gray is
  ITU-R 601 luma (PIL's 'L')."""
  image = to_uint8(image)
  if image.ndim == 2:
    image = image[:, :, None]
  if image.shape[-1] in (2, 4):  # drop alpha
    image = image[:, :, :-1]
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


def image_files(folder: pathlib.Path) -> list[pathlib.Path]:
  """The PNG/JPEG/BMP/TIFF files in `folder` (not recursive), sorted by name."""
  return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def folder_images(folder: str | pathlib.Path) -> list[pathlib.Path]:
  """The image files of a training or validation folder, or of several joined by commas
  ("T91,BSD200": the 291 SR training images), in that order; DataError when a folder is
  missing or holds no images."""
  if isinstance(folder, str) and "," in folder and not pathlib.Path(folder).expanduser().is_dir():
    return [path for part in folder.split(",") for path in folder_images(part.strip())]
  folder = pathlib.Path(folder).expanduser()
  if not folder.is_dir():
    raise DataError(f"image folder {folder} does not exist; pass an existing folder or "
                    "'builtin' for the bundled sample photos.")
  files = image_files(folder)
  if not files:
    raise DataError(f"image folder {folder} has no {'/'.join(IMAGE_SUFFIXES)} images; "
                    "point to the folder that holds the images themselves.")
  return files


def image_size(path: str | pathlib.Path) -> tuple[int, int]:
  """(width, height) of an image file, from its header (no pixels are decoded)."""
  from PIL import Image

  with Image.open(path) as image:
    return image.size


def read_image(path: pathlib.Path, channels: int) -> np.ndarray:
  """One image file as uint8 (H, W, channels), read as restore reads it (`photos.read_photo`:
  every PIL mode, 16-bit, EXIF orientation; alpha dropped); DataError naming the file."""
  photo = read_photo(path)
  return to_channels(np.round(photo.pixels * 255).astype(np.uint8), channels)


def load_folder(folder: str | pathlib.Path, channels: int) -> list[tuple[str, np.ndarray]]:
  """Every PNG/JPEG/BMP/TIFF image in `folder` (sorted by name, not recursive)."""
  return [(path.name, read_image(path, channels)) for path in folder_images(folder)]


def tfds_error(name: str, split: str, error: Exception) -> DataError:
  """The DataError for a TFDS dataset that cannot be opened, with the first line of `error`
  (for an unknown name, tfds goes on to list every dataset it knows)."""
  reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
  return DataError(f"cannot load TFDS dataset {name!r} split {split!r} ({reason}); build it "
                   "first with `tfds build`, or check the name.")


def tfds_image_key(name: str, info, image_key: str | None = None) -> str:
  """The image feature of a TFDS dataset (`info`: its DatasetInfo): `image_key`; else the
  target of its supervised pair when that is an image (DIV2K's ("lr", "hr") gives "hr", the
  clean image of a restoration dataset); else its first image feature."""
  import tensorflow_datasets as tfds

  keys = [k for k, f in info.features.items() if isinstance(f, tfds.features.Image)]
  target = (info.supervised_keys or (None, None))[-1]
  key = image_key or (target if target in keys else keys[0] if keys else None)
  if key is None:
    raise DataError(f"TFDS dataset {name!r} has no image feature; pick a dataset with one.")
  return key


def load_tfds(name: str, split: str, channels: int, data_dir: str | None = None,
              image_key: str | None = None) -> list[tuple[str, np.ndarray]]:
  """Images of a TFDS dataset (any dataset with an image feature), read once into memory."""
  import tensorflow_datasets as tfds

  try:
    dataset, info = tfds.load(name, split=split, data_dir=data_dir, with_info=True,
                              try_gcs=False)
  except Exception as error:  # tfds raises many types for unknown or unprepared datasets
    raise tfds_error(name, split, error) from None
  key = tfds_image_key(name, info, image_key)
  return [(f"{name}[{i}]", to_channels(example[key], channels))
          for i, example in enumerate(tfds.as_numpy(dataset))]


def parse_source(source: str, split: str) -> tuple[str, str]:
  """(kind, location) of a source string: ("builtin", split), ("tfds", "NAME:SPLIT") or
  ("folder", path)."""
  if source == "builtin":
    return "builtin", split
  if source.startswith("tfds:"):
    name, _, tfds_split = source[5:].partition(":")
    return "tfds", f"{name}:{tfds_split or split}"
  return "folder", source


def load_source(source: str, split: str, channels: int,
                data_dir: str | None = None) -> list[tuple[str, np.ndarray]]:
  """Resolves a source string: "builtin", "tfds:NAME[:SPLIT]", or an image folder path."""
  kind, location = parse_source(source, split)
  if kind == "builtin":
    return load_builtin(location, channels)
  if kind == "tfds":
    name, _, tfds_split = location.partition(":")
    return load_tfds(name, tfds_split, channels, data_dir)
  return load_folder(location, channels)


def save_png(path: pathlib.Path, image: np.ndarray):
  """Writes an (H, W, C) image in [0, 1] as an 8-bit PNG (creating the folder)."""
  from PIL import Image

  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)


def center_crop(images, size: int):
  """The central size×size part of (..., H, W, C) images, numpy or JAX (all of an axis that is
  shorter than `size`)."""
  h, w = images.shape[-3:-1]
  top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
  return images[..., top:top + size, left:left + size, :]


def crop_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
  """uint8 (H, W, C) -> float32 (H', W', C) in [0, 1], H' and W' cropped down to multiples of
  `multiple` (the SR papers' "modcrop")."""
  h, w = image.shape[:2]
  return image[:h - h % multiple, :w - w % multiple].astype(np.float32) / 255.0

"""Streaming training patches (grain): a random crop of a freshly read image for every patch.

The fixed pipeline (`data.pipeline = "fixed"`, `patches.py`) cuts every patch once and holds all
of them in host memory: DIV2K in RGB would take ~20 GB. The stream (`data.pipeline = "stream"`)
reads an image when a patch of it is needed, as BasicSR's paired-image datasets and the SR papers'
loaders do: each element is one image of an epoch-wise shuffle, cropped at a random place and
scale, turned by a random dihedral transform. Host memory is bounded by the settings
(`data.stream`), not by the dataset: about `threads` decoded images plus max(buffer, threads)
batches.

The pipeline is a grain `MapDataset` (random access, so element i is a function of (seed, i)),
iterated by grain's threads; its iterator state goes into each orbax checkpoint, so a resumed run
reads the same batches as an uninterrupted one. With several processes, each one reads its own
part of every global batch of the same stream: the global batch of a step holds the same patches
in the same order whatever the number of processes.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import grain
import numpy as np

from sfm_jax.data.images import (
  folder_images,
  image_size,
  load_builtin,
  parse_source,
  read_image,
  tfds_error,
  tfds_image_key,
  to_channels,
)
from sfm_jax.data.patches import dihedral, resize_uint8
from sfm_jax.errors import DataError


def check_side(image: np.ndarray, name: str, min_side: int) -> np.ndarray:
  """`image` (H, W, C), or DataError naming it if a side is shorter than `min_side`."""
  if min(image.shape[:2]) < min_side:
    raise DataError(f"image {name} is {image.shape[0]}×{image.shape[1]}, smaller than the "
                    f"{min_side}×{min_side} training patch; lower data.patch_size or remove it.")
  return image


class ImageFiles(grain.sources.RandomAccessDataSource):
  """The images of a folder, each read when asked for: uint8 (H, W, channels); DataError
  naming the file if it cannot be read or has a side shorter than `min_side`."""

  def __init__(self, folder: str | pathlib.Path, channels: int, min_side: int = 0,
               skip_small: bool = False):
    self.files = [str(p) for p in folder_images(folder)]
    self.channels, self.min_side = channels, min_side
    if skip_small:
      self.files = [f for f in self.files if min(image_size(f)) >= min_side]
      if not self.files:
        raise DataError(f"every image of {folder} is smaller than the {min_side}×{min_side} "
                        "training patch; lower data.patch_size.")

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, index: int) -> np.ndarray:
    path = pathlib.Path(self.files[index])
    return check_side(read_image(path, self.channels), str(path), self.min_side)

  def __repr__(self) -> str:
    return f"ImageFiles({len(self.files)} files from {pathlib.Path(self.files[0]).parent})"


class InMemoryImages(grain.sources.RandomAccessDataSource):
  """Images already in memory (the bundled photos): uint8 (H, W, C) each."""

  def __init__(self, images: list[np.ndarray]):
    self.images = images

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, index: int) -> np.ndarray:
    return self.images[index]


class TfdsImages(grain.sources.RandomAccessDataSource):
  """The image feature of a TFDS split stored as ArrayRecord (`tfds.data_source`), each
  example decoded when asked for: uint8 (H, W, channels)."""

  def __init__(self, name: str, split: str, channels: int, data_dir: str | None = None,
               min_side: int = 0):
    import tensorflow_datasets as tfds

    try:
      self.source = tfds.data_source(name, split=split, data_dir=data_dir, try_gcs=False)
    except NotImplementedError:  # built as TFRecord, which has no random access
      raise DataError(f"TFDS dataset {name!r} is stored as TFRecord, which cannot be streamed; "
                      f"rebuild it with `tfds build {name} --file_format=array_record`, or set "
                      "data.pipeline='fixed'.") from None
    except Exception as error:  # tfds raises many types for unknown or unprepared datasets
      raise tfds_error(name, split, error) from None
    self.key = tfds_image_key(name, self.source.dataset_info)
    self.name, self.channels, self.min_side = name, channels, min_side

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> np.ndarray:
    image = to_channels(self.source[index][self.key], self.channels)
    return check_side(image, f"{self.name}[{index}]", self.min_side)


class FirstImages(grain.sources.RandomAccessDataSource):
  """The first `count` images of another source (data.max_train_images)."""

  def __init__(self, source: grain.sources.RandomAccessDataSource, count: int):
    self.source, self.count = source, min(count, len(source))

  def __len__(self) -> int:
    return self.count

  def __getitem__(self, index: int) -> np.ndarray:
    return self.source[index]


def open_source(source: str, split: str, channels: int, data_dir: str | None = None,
                max_images: int = -1, min_side: int = 0,
                skip_small: bool = False) -> grain.sources.RandomAccessDataSource:
  """The random-access images of a source string ("builtin", "tfds:NAME[:SPLIT]", folders),
  the first `max_images` of them if > 0; an image with a side shorter than `min_side` is a
  DataError that names it (when it is read), or, in folders with `skip_small`, left out."""
  kind, location = parse_source(source, split)
  if kind == "builtin":
    images = InMemoryImages([check_side(image, name, min_side)
                             for name, image in load_builtin(location, channels)])
  elif kind == "tfds":
    name, _, tfds_split = location.partition(":")
    images = TfdsImages(name, tfds_split, channels, data_dir, min_side)
  else:
    images = ImageFiles(location, channels, min_side, skip_small)
  return FirstImages(images, max_images) if max_images > 0 else images


@dataclasses.dataclass(frozen=True)
class RandomPatch(grain.transforms.RandomMap):
  """uint8 (H, W, C) -> uint8 (size, size, C): a crop at a random place, taken at a scale drawn
  from `scales` (a (size/scale)² region resized to size² by the fixed pipeline's bicubic), then
  one of the 8 dihedral transforms if `flips`."""

  size: int
  scales: tuple[float, ...] = (1.0,)
  flips: bool = True

  def random_map(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    if min(h, w) < self.size:
      raise DataError(f"a training image is {h}×{w}, smaller than the {self.size}×{self.size} "
                      "patch; lower data.patch_size or remove the image.")
    scale = self.scales[rng.integers(len(self.scales))]
    region = min(round(self.size / scale), h, w)
    top, left = rng.integers(h - region + 1), rng.integers(w - region + 1)
    patch = image[top:top + region, left:left + region]
    if region != self.size:
      patch = resize_uint8(patch, self.size, self.size)
    if self.flips:
      patch = dihedral(patch, int(rng.integers(8)))
    return np.ascontiguousarray(patch)


@dataclasses.dataclass(frozen=True)
class RandomPatches(grain.transforms.RandomMap):
  """uint8 (H, W, C) -> uint8 (count, size, size, C): `count` independent `crop`s of one image
  (one decode for `count` patches)."""

  crop: RandomPatch
  count: int = 1

  def random_map(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.stack([self.crop.random_map(image, rng) for _ in range(self.count)])


def _flatten_batch(batch: np.ndarray) -> np.ndarray:
  """(images, patches per image, P, P, C) -> (images · patches per image, P, P, C)."""
  return batch.reshape(-1, *batch.shape[2:])


def default_threads() -> int:
  """Reading threads when data.stream.threads is 0: one per core this process may use, at most
  16."""
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return min(cores or 1, 16)


def patch_stream(source: grain.sources.RandomAccessDataSource, *, batch_size: int,
                 patch_size: int, seed: int, scales=(1.0,), flips: bool = True,
                 patches_per_image: int = 1, threads: int = 0, buffer: int = 32,
                 workers: int = 0, process_index: int = 0,
                 process_count: int = 1) -> grain.DatasetIterator:
  """An endless iterator of this process's uint8 batches (batch_size / process_count,
  patch_size, patch_size, C): `patches_per_image` random patches (consecutive in the batch) of
  each image of an epoch-wise shuffle.

  Process p's batch at step s is part p of the global batch s: patches
  [s·B + p·B/P, s·B + (p + 1)·B/P) of the stream, so the global batch does not depend on P.
  `threads` build batches in parallel (0: `default_threads()`), at most max(buffer, threads)
  batches are read ahead; `workers` > 0 moves the reading into that many processes (grain's
  mp_prefetch). Host memory: about `threads` decoded images plus that many batches. The
  iterator's `get_state()`/`set_state()` (and grain.checkpoint) resume it exactly.
  """
  images_per_batch, remainder = divmod(batch_size, process_count * patches_per_image)
  if remainder:
    raise DataError(f"train.batch_size={batch_size} is not divisible by the {process_count} "
                    f"process(es) × {patches_per_image} patches per image; use a multiple of "
                    f"{process_count * patches_per_image}.")
  threads = threads or default_threads()
  crop = RandomPatch(patch_size, tuple(scales), flips)
  images = (grain.MapDataset.source(source).seed(seed).shuffle().repeat()
            .random_map(RandomPatches(crop, patches_per_image)))
  # sliced after the crops, which depend on the global index
  local = images.batch(images_per_batch)[process_index::process_count].map(_flatten_batch)
  options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(buffer, threads))
  stream = local.to_iter_dataset(options)
  if workers > 0:
    _parse_absl_flags()
    stream = stream.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  return iter(stream)


def _parse_absl_flags() -> None:
  """grain's worker processes read absl flags: outside an absl program (train.py is one), take
  their defaults."""
  from absl import flags

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def steps_per_epoch(source: grain.sources.RandomAccessDataSource, batch_size: int,
                    patches_per_image: int = 1) -> int:
  """Steps that show every image once (at least 1): what data.pipeline "stream" calls an epoch."""
  return max(len(source) * patches_per_image // batch_size, 1)

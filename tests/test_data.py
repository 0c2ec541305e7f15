"""Data sources, patches and batches: shapes against the originals, determinism, clear errors."""

import numpy as np
import pytest
from PIL import Image

from sfm_jax.data.images import DataError, load_folder, load_source, load_tfds, to_channels
from sfm_jax.data.patches import build_patches, dihedral, grid_patches, rescale_uint8
from sfm_jax.data.pipeline import PatchBatches


def write_images(folder, sizes, mode="L", seed=0):
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  for i, (h, w) in enumerate(sizes):
    shape = (h, w) if mode == "L" else (h, w, 3)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{i}.png")
  return folder


def test_folder_loads_sorted_gray_and_colour(tmp_path):
  write_images(tmp_path / "rgb", [(20, 30), (25, 15)], mode="RGB")
  (tmp_path / "rgb" / "notes.txt").write_text("ignored")
  gray = load_folder(tmp_path / "rgb", channels=1)
  colour = load_folder(tmp_path / "rgb", channels=3)
  assert [n for n, _ in gray] == ["0.png", "1.png"]
  assert gray[0][1].shape == (20, 30, 1) and colour[1][1].shape == (25, 15, 3)
  rgb = colour[0][1].astype(np.float64)
  luma = np.round(rgb @ [0.299, 0.587, 0.114])
  np.testing.assert_array_equal(gray[0][1][..., 0], luma.astype(np.uint8))


def test_gray_to_colour_repeats_and_alpha_is_dropped():
  img = np.arange(12, dtype=np.uint8).reshape(3, 4)
  np.testing.assert_array_equal(to_channels(img, 3), np.stack([img] * 3, -1))
  rgba = np.zeros((2, 2, 4), np.uint8)
  assert to_channels(rgba, 3).shape == (2, 2, 3)


def test_builtin_images_have_a_held_out_split():
  train = load_source("builtin", "train", 1)
  val = load_source("builtin", "val", 1)
  assert len(train) >= 10 and len(val) >= 3
  assert not {n for n, _ in train} & {n for n, _ in val}


def test_bsd400_patch_counts_match_spec():
  """180×180 at scales 1/0.9/0.8/0.7 gives 16 + 16 + 9 + 4 = 45 patches of 64 (stride 32)."""
  img = np.random.default_rng(0).integers(0, 256, (180, 180, 1), dtype=np.uint8)
  sizes = [rescale_uint8(img, s).shape[0] for s in (1.0, 0.9, 0.8, 0.7)]
  assert sizes == [180, 162, 144, 125]
  counts = [len(grid_patches(rescale_uint8(img, s), 64, 32)) for s in (1.0, 0.9, 0.8, 0.7)]
  assert counts == [16, 16, 9, 4]
  patches = build_patches([("a", img)], 64, 32, (1.0, 0.9, 0.8, 0.7), aug_copies=1)
  assert patches.shape == (90, 64, 64, 1) and patches.dtype == np.uint8
  np.testing.assert_array_equal(patches[0], img[:64, :64])  # original first, then its copy
  np.testing.assert_array_equal(patches[2], img[:64, 32:96])


def test_rescale_is_opencv_style_bicubic():
  """A linear ramp is reproduced exactly by a cubic kernel away from the borders."""
  ramp = np.tile(np.arange(0, 200, 2, dtype=np.uint8), (100, 1))[:, :, None]  # 100×100
  out = rescale_uint8(ramp, 0.5)
  assert out.shape == (50, 50, 1)
  x = (np.arange(50) + 0.5) / 0.5 - 0.5  # OpenCV's source coordinate
  np.testing.assert_allclose(out[10, 3:-3, 0], np.round(2 * x[3:-3]), atol=1)


@pytest.mark.parametrize("mode, ref", [
    (0, lambda a: a), (1, np.flipud), (2, np.rot90), (3, lambda a: np.flipud(np.rot90(a))),
    (4, lambda a: np.rot90(a, 2)), (5, lambda a: np.flipud(np.rot90(a, 2))),
    (6, lambda a: np.rot90(a, 3)), (7, lambda a: np.flipud(np.rot90(a, 3))),
])
def test_dihedral_modes_follow_sfm_data_augmentation(mode, ref):
  a = np.arange(12).reshape(3, 4, 1)
  np.testing.assert_array_equal(dihedral(a, mode), ref(a))


def test_batches_are_a_function_of_seed_and_step():
  patches = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1)
  a, b = PatchBatches(patches, 8, seed=3), PatchBatches(patches, 8, seed=3)
  assert a.steps_per_epoch == 6  # the incomplete last batch is dropped
  np.testing.assert_array_equal(a.local_batch(7), b.local_batch(7))
  epoch = np.concatenate([a.local_batch(s).ravel() for s in range(6)])
  assert len(set(epoch)) == 48  # no repeats within an epoch
  it = a(start_step=4)
  np.testing.assert_array_equal(next(it), a.local_batch(4))
  assert not np.array_equal(a.local_batch(0), a.local_batch(6))  # reshuffled each epoch


def test_tfds_source_reads_any_image_dataset(tmp_path):
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=3):
    images = load_tfds("mnist", "train", channels=1)
  assert len(images) == 3 and images[0][1].shape == (28, 28, 1)
  assert images[0][1].dtype == np.uint8


@pytest.mark.parametrize("setup, message", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "has no"),
    (lambda p: write_bad(p), "cannot read .*zz_broken.png .*Remove or replace"),
])
def test_folder_errors_name_the_fix(tmp_path, setup, message):
  with pytest.raises(DataError, match=message):
    load_folder(setup(tmp_path), channels=1)


def write_bad(folder):
  folder = folder / "bad"
  write_images(folder, [(8, 8)])
  (folder / "zz_broken.png").write_bytes(b"not a png")
  return folder


def test_image_smaller_than_a_patch_is_named():
  with pytest.raises(DataError, match="tiny.png is 20×30, smaller than the 32×32"):
    build_patches([("tiny.png", np.zeros((20, 30, 1), np.uint8))], 32, 16)
  with pytest.raises(DataError, match="only 1 training patches for a batch of 4"):
    PatchBatches(np.zeros((1, 4, 4, 1), np.uint8), 4)


def test_a_tfds_pair_of_images_gives_its_target_the_clean_image():
  """DIV2K's features are {"lr", "hr"} in that order, supervised ("lr", "hr"): training and
  validation read "hr"; a dataset without an image pair gives its first image feature."""
  import types

  import tensorflow_datasets as tfds

  from sfm_jax.data.images import tfds_image_key

  image = tfds.features.Image
  div2k = types.SimpleNamespace(features=tfds.features.FeaturesDict({"lr": image(), "hr": image()}),
                                supervised_keys=("lr", "hr"))
  assert tfds_image_key("div2k", div2k) == "hr"
  assert tfds_image_key("div2k", div2k, image_key="lr") == "lr"
  mnist = types.SimpleNamespace(features=tfds.features.FeaturesDict(
      {"image": image(shape=(28, 28, 1)), "label": tfds.features.ClassLabel(num_classes=10)}),
      supervised_keys=("image", "label"))
  assert tfds_image_key("mnist", mnist) == "image"
  unsupervised = types.SimpleNamespace(features=mnist.features, supervised_keys=None)
  assert tfds_image_key("x", unsupervised) == "image"

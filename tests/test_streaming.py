"""The streaming training data (data.pipeline="stream"): random crops, epochs, exact resume,
per-process shares of the global batch, TFDS ArrayRecord, and training through it."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from test_train import ROOT, flat, load_config, load_state, shrink

from sfm_jax.data import streaming
from sfm_jax.data.patches import dihedral
from sfm_jax.errors import CheckpointError, ConfigError, DataError
from sfm_jax.train.loop import train_and_evaluate


def test_a_patch_is_a_crop_of_its_image_turned_by_a_dihedral_transform(rng):
  image = rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)
  crop = streaming.RandomPatch(16, (1.0,), flips=True)
  modes = set()
  for seed in range(12):
    patch = crop.random_map(image, np.random.default_rng(seed))
    assert patch.shape == (16, 16, 3) and patch.dtype == np.uint8
    found = [(mode, top, left) for mode in range(8) for top in range(35) for left in range(25)
             if np.array_equal(dihedral(image[top:top + 16, left:left + 16], mode), patch)]
    assert len(found) == 1
    modes.add(found[0][0])
  assert len(modes) > 3  # the transform is drawn, not fixed


def test_a_scaled_patch_is_a_resized_larger_region(rng):
  """Scale 0.5: a 32×32 region brought down to 16×16, close to its 2×2 block means."""
  image = ndimage.gaussian_filter(rng.uniform(0, 255, (60, 60)), 3)
  image = np.round(image).astype(np.uint8)[:, :, None]
  patch = streaming.RandomPatch(16, (0.5,), flips=False).random_map(image, rng).astype(float)
  errors = [np.abs(image[t:t + 32, l:l + 32, 0].reshape(16, 2, 16, 2).mean((1, 3))
                   - patch[..., 0]).mean() for t in range(29) for l in range(29)]
  assert min(errors) < 1.0 < np.median(errors)


def test_an_image_smaller_than_the_patch_is_named():
  with pytest.raises(DataError, match="smaller than the 32×32 patch"):
    streaming.RandomPatch(32).random_map(np.zeros((20, 50, 1), np.uint8),
                                         np.random.default_rng(0))


def constant_images(count, size=8):
  """`count` size×size gray images, image i filled with the value i."""
  return streaming.InMemoryImages([np.full((size, size, 1), i, np.uint8) for i in range(count)])


def test_each_epoch_shows_every_image_once_in_a_new_order():
  stream = streaming.patch_stream(constant_images(6), batch_size=3, patch_size=8, seed=0)
  epochs = [np.concatenate([next(stream), next(stream)])[:, 0, 0, 0] for _ in range(3)]
  for order in epochs:
    assert sorted(order) == list(range(6))
  assert len({tuple(order) for order in epochs}) == 3


def test_a_restored_stream_continues_with_the_same_batches(rng):
  images = streaming.InMemoryImages([rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
                                     for _ in range(5)])

  def open_stream():
    return streaming.patch_stream(images, batch_size=4, patch_size=16, seed=3, scales=(1, 0.7))

  straight = open_stream()
  for _ in range(3):
    next(straight)
  saved = json.loads(json.dumps(straight.get_state()))  # as grain.checkpoint stores it
  expected = [next(straight) for _ in range(4)]
  resumed = open_stream()
  resumed.set_state(saved)
  for batch in expected:
    np.testing.assert_array_equal(next(resumed), batch)


def test_several_patches_per_image_come_from_one_image_each_epoch():
  stream = streaming.patch_stream(constant_images(6), batch_size=4, patch_size=4, seed=0,
                                  patches_per_image=2)
  epoch = np.concatenate([next(stream) for _ in range(3)])[:, 0, 0, 0]  # 6 images × 2
  assert sorted(epoch) == sorted(list(range(6)) * 2)
  assert (epoch[0::2] == epoch[1::2]).all()  # consecutive pairs share their image


def test_reader_processes_give_the_threads_batches_and_resume(rng):
  images = streaming.InMemoryImages([rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
                                     for _ in range(7)])

  def open_stream(workers):
    return streaming.patch_stream(images, batch_size=4, patch_size=16, seed=2, workers=workers)

  threads, processes = open_stream(0), open_stream(2)
  for _ in range(3):
    np.testing.assert_array_equal(next(processes), next(threads))
  saved, expected = processes.get_state(), next(threads)
  processes.close()
  resumed = open_stream(2)
  resumed.set_state(saved)
  np.testing.assert_array_equal(next(resumed), expected)
  for stream in (threads, resumed):
    stream.close()


@pytest.mark.parametrize("processes, per_image", [(2, 1), (4, 1), (2, 2)])
def test_the_process_shares_make_up_the_global_batch_in_order(processes, per_image, rng):
  images = streaming.InMemoryImages([rng.integers(0, 256, (20, 20, 1), dtype=np.uint8)
                                     for _ in range(10)])

  def stream(index=0, count=1):
    return streaming.patch_stream(images, batch_size=8, patch_size=8, seed=1,
                                  patches_per_image=per_image, process_index=index,
                                  process_count=count)

  whole = stream()
  shares = [stream(p, processes) for p in range(processes)]
  for _ in range(3):
    np.testing.assert_array_equal(np.concatenate([next(s) for s in shares]), next(whole))


def test_a_batch_that_the_processes_cannot_share_is_refused():
  with pytest.raises(DataError, match="multiple of 3"):
    streaming.patch_stream(constant_images(4), batch_size=4, patch_size=8, seed=0,
                           process_count=3)
  with pytest.raises(DataError, match="2 process\\(es\\) × 3 patches per image; use a "
                                      "multiple of 6"):
    streaming.patch_stream(constant_images(4), batch_size=8, patch_size=8, seed=0,
                           process_count=2, patches_per_image=3)


def test_tfds_streams_from_array_record_and_names_the_rebuild_for_tfrecord(tmp_path):
  import tensorflow_datasets as tfds

  for file_format in ("array_record", "tfrecord"):
    tfds.testing.DummyMnist(data_dir=tmp_path / file_format,
                            file_format=file_format).download_and_prepare()
  source = streaming.open_source("tfds:dummy_mnist", "train", 1, str(tmp_path / "array_record"))
  assert len(source) == 20 and source[0].shape == (28, 28, 1) and source[0].dtype == np.uint8
  with pytest.raises(DataError, match="--file_format=array_record"):
    streaming.open_source("tfds:dummy_mnist", "train", 1, str(tmp_path / "tfrecord"))


def test_bad_stream_settings_fail_before_any_work(tiny_folder, tmp_path):
  config = stream_config(tiny_folder, 2)
  config.data.stream.buffer = 0
  with pytest.raises(ConfigError, match="buffer=0.*buffer > 0"):
    train_and_evaluate(config, str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


def test_a_folder_is_read_one_image_at_a_time(tiny_folder):
  source = streaming.open_source(str(tiny_folder), "train", 1, max_images=4)
  assert len(source) == 4
  np.testing.assert_array_equal(source[1][..., 0], np.asarray(Image.open(tiny_folder /
                                                                          "crop1.png")))


def stream_config(folder, steps):
  config = shrink(load_config("sr_quick"), folder, steps=steps)
  assert config.data.pipeline == "stream"  # the SR default
  config.train.checkpoint_every = 2
  return config


def test_streamed_training_resumes_to_the_uninterrupted_weights(tiny_folder, tmp_path):
  straight = train_and_evaluate(stream_config(tiny_folder, 6), str(tmp_path / "a"))
  train_and_evaluate(stream_config(tiny_folder, 2), str(tmp_path / "b"))
  assert (tmp_path / "b" / "checkpoints" / "2" / "data").is_dir()
  resumed = train_and_evaluate(stream_config(tiny_folder, 6), str(tmp_path / "b"))
  assert [s for s, _ in resumed["losses"]] == [3, 4, 5, 6]  # log_every is 1 in `shrink`
  np.testing.assert_allclose([l for _, l in resumed["losses"]],
                             [l for _, l in straight["losses"][2:]], rtol=1e-6)
  np.testing.assert_allclose(flat(load_state(tmp_path / "b" / "weights.msgpack")),
                             flat(load_state(tmp_path / "a" / "weights.msgpack")), atol=1e-6)


def test_a_fixed_pipeline_checkpoint_is_not_resumed_as_a_stream(tiny_folder, tmp_path):
  config = stream_config(tiny_folder, 2)
  config.data.pipeline = "fixed"
  train_and_evaluate(config, str(tmp_path))
  with pytest.raises(CheckpointError, match="data.pipeline='fixed'"):
    train_and_evaluate(stream_config(tiny_folder, 4), str(tmp_path), force_resume=True)
  assert (tmp_path / "checkpoints" / "2" / "default").is_dir()  # left where it was


def train_command(folder, workdir, steps):
  overrides = {"data.source": folder, "data.val_source": folder, "data.patch_size": 24,
               "train.batch_size": 4, "train.steps": steps, "train.checkpoint_every": 2,
               "train.eval_every": 1000, "train.require_improvement": False,
               "eval.max_val_images": 1, "model.kwargs.nb": 1, "model.kwargs.nf": 8,
               "model.kwargs.gc": 4}
  return [sys.executable, "train.py", "--config", "configs/sr_quick.py", "--workdir",
          str(workdir), *(f"--config.{k}={v}" for k, v in overrides.items())]


@pytest.mark.slow  # three interpreters, ~60 s here
def test_a_killed_streamed_run_resumes_to_the_uninterrupted_weights(tiny_folder, tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  subprocess.run(train_command(tiny_folder, tmp_path / "straight", 40), cwd=ROOT, env=env,
                 check=True, capture_output=True)
  killed = tmp_path / "killed"
  run = subprocess.Popen(train_command(tiny_folder, killed, 40), cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while not (killed / "checkpoints" / "10" / "commit_success.txt").exists():
    assert run.poll() is None and time.time() < deadline, "no checkpoint at step 10"
    time.sleep(0.05)
  run.send_signal(signal.SIGKILL)
  run.wait()
  assert not (killed / "weights.msgpack").exists()
  resumed = subprocess.run(train_command(tiny_folder, killed, 40), cwd=ROOT, env=env,
                           check=True, capture_output=True, text=True)
  assert "Resuming from the checkpoint at step" in resumed.stdout
  np.testing.assert_allclose(flat(load_state(killed / "weights.msgpack")),
                             flat(load_state(tmp_path / "straight" / "weights.msgpack")),
                             atol=1e-6)


def test_a_run_recorded_before_the_pipelines_existed_resumes_as_it_ran(tiny_folder, tmp_path):
  """A config.json without the data.pipeline / data.stream / compute_dtype fields (an earlier
  version's) resumes with the fixed pipeline; an SR config, now streamed, is refused by name."""
  def forget_new_fields(workdir):
    record = json.loads((workdir / "config.json").read_text())
    del record["data"]["pipeline"], record["data"]["stream"]
    del record["train"]["compute_dtype"], record["eval"]["compute_dtype"]
    (workdir / "config.json").write_text(json.dumps(record))

  config = shrink(load_config("quickstart"), tiny_folder, steps=2)
  train_and_evaluate(config, str(tmp_path / "denoise"))
  forget_new_fields(tmp_path / "denoise")
  config.train.steps = 4
  assert [s for s, _ in train_and_evaluate(config, str(tmp_path / "denoise"))["losses"]] == [3, 4]

  config = stream_config(tiny_folder, 2)
  config.data.pipeline = "fixed"
  train_and_evaluate(config, str(tmp_path / "sr"))
  forget_new_fields(tmp_path / "sr")
  with pytest.raises(ConfigError, match="data.pipeline: 'fixed' -> 'stream'"):
    train_and_evaluate(stream_config(tiny_folder, 4), str(tmp_path / "sr"))


@pytest.mark.parametrize("bad, message", [
    ("small", r"image .*small.png is 20×60, smaller than the 24×24 training patch"),
    ("corrupt", r"cannot read .*corrupt.png .*Remove or replace"),
])
def test_a_bad_image_met_while_streaming_stops_training_naming_it(bad, message, tiny_folder,
                                                                 tmp_path):
  folder = tmp_path / "images"
  folder.mkdir()
  for path in tiny_folder.iterdir():
    (folder / path.name).write_bytes(path.read_bytes())
  if bad == "small":
    Image.fromarray(np.zeros((20, 60), np.uint8)).save(folder / "small.png")
  else:
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
  config = stream_config(folder, 8)
  config.data.val_source = str(tiny_folder)
  with pytest.raises(DataError, match=message):
    train_and_evaluate(config, str(tmp_path / "run"))

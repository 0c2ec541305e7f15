"""A careless user and an unlucky machine: bad settings, bad files, diverging runs, corrupt
checkpoints, a workdir of another run. Each case checks the error (one sentence naming the fix)
and that no file the user had is lost or changed."""

import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image
from test_train import ROOT, load_config, shrink

from sfm_jax.data.images import load_folder
from sfm_jax.data.pipeline import Prefetcher
from sfm_jax.errors import CheckpointError, ConfigError, DataError, TrainingError
from sfm_jax.evaluation.sr import evaluate_sr, sr_min_side
from sfm_jax.train.checkpoints import Checkpoints
from sfm_jax.train.loop import train_and_evaluate


def tiny(folder, steps=2, **fields):
  """The quickstart config, tiny; `fields` as {"section.key": value}."""
  config = shrink(load_config("quickstart"), folder, steps=steps)
  for field, value in fields.items():
    section, key = field.split(".")
    config[section][key] = value
  return config


def snapshot(folder: pathlib.Path) -> dict[str, str]:
  """{relative path: sha256} of every file under `folder`."""
  return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob("*")) if p.is_file()}


def saved_steps(workdir) -> list[int]:
  checkpoints = Checkpoints(workdir)
  try:
    return sorted(checkpoints.manager.all_steps())
  finally:
    checkpoints.close()


# --- settings checked before any work -------------------------------------------------------


@pytest.mark.parametrize("fields, message", [
    ({"train.steps": 0}, r"train.steps=0; use a positive number of steps, or -1"),
    ({"train.steps": -5}, r"train.steps=-5"),
    ({"train.batch_size": 0}, r"train.batch_size=0; it must be > 0"),
    ({"train.batch_size": -4}, r"train.batch_size=-4"),
    ({"train.checkpoint_every": 0}, r"train.checkpoint_every=0"),
    ({"optim.learning_rate": float("nan")}, r"optim.learning_rate=nan; it must be a finite"),
    ({"eval.sigma": -5.0}, r"eval.sigma holds \[-5.0\]; noise levels and blur σ must be ≥ 0"),
    ({"eval.sigmas": (15, -5)}, r"eval.sigmas holds \[-5\]"),
    ({"data.channels": 3}, r"model.kwargs.channels=1 but data.channels=3"),
    ({"data.channels": 2}, r"data.channels=2; use 1 \(gray\) or 3"),
    ({"data.scales": (1.0, 0.0)}, r"data.scales=\(1.0, 0.0\)"),
    ({"train.ema_decay": 1.0}, r"train.ema_decay=1.0"),
    ({"data.pipeline": "streaming"}, r"data.pipeline='streaming'; use 'fixed' .* or 'stream'"),
    ({"train.compute_dtype": "float16"}, r"train.compute_dtype='float16'; use 'float32' or"),
    ({"eval.compute_dtype": "bf16"}, r"eval.compute_dtype='bf16'; use 'float32' or"),
])
def test_bad_settings_fail_before_any_work(fields, message, tiny_folder, tmp_path):
  with pytest.raises(ConfigError, match=message):
    train_and_evaluate(tiny(tiny_folder, **fields), str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()  # checked before the workdir is made


def test_a_workdir_that_is_a_file_or_under_a_file_is_refused(tiny_folder, tmp_path):
  file = tmp_path / "notes.txt"
  file.write_text("mine")
  with pytest.raises(ConfigError, match="is a file, not a folder"):
    train_and_evaluate(tiny(tiny_folder), str(file))
  with pytest.raises(ConfigError, match="cannot create workdir"):
    train_and_evaluate(tiny(tiny_folder), str(file / "run"))
  assert file.read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_a_read_only_workdir_is_refused(tiny_folder, tmp_path):
  (tmp_path / "ro").mkdir(mode=0o500)
  with pytest.raises(ConfigError, match="is not writable"):
    train_and_evaluate(tiny(tiny_folder), str(tmp_path / "ro"))


# --- images of every bit depth ---------------------------------------------------------------


def test_16_bit_and_float_images_are_scaled_not_clipped(tmp_path):
  ramp = np.linspace(0, 1, 48 * 40).reshape(48, 40)
  Image.fromarray(np.round(ramp * 65535).astype(np.uint16)).save(tmp_path / "a16.png")
  Image.fromarray(ramp.astype(np.float32)).save(tmp_path / "b_float.tiff")
  Image.fromarray(np.round(ramp * 255).astype(np.uint8)).save(tmp_path / "c8.png")
  images = dict(load_folder(tmp_path, 1))
  eight = images["c8.png"].astype(int)
  for name in ("a16.png", "b_float.tiff"):
    assert np.abs(images[name].astype(int) - eight).max() <= 1, name


def test_a_float_image_outside_0_1_is_a_data_error(tmp_path):
  Image.fromarray(np.full((8, 8), 300.0, np.float32)).save(tmp_path / "hdr.tiff")
  with pytest.raises(DataError, match=r"float images must lie in \[0, 1\]"):
    load_folder(tmp_path, 1)


def test_validation_images_too_small_to_score_stop_training_before_any_step(tiny_folder,
                                                                             tmp_path):
  val = tmp_path / "val"
  val.mkdir()
  Image.fromarray(np.zeros((40, 40), np.uint8)).save(val / "fine.png")
  Image.fromarray(np.zeros((5, 6), np.uint8)).save(val / "a_tiny.png")
  with pytest.raises(DataError, match=r"val, a_tiny.png \(5×6\) is smaller than the 11×11"):
    train_and_evaluate(tiny(tiny_folder, steps=50, **{"data.val_source": str(val)}),
                       str(tmp_path / "w"))
  assert not (tmp_path / "w" / "checkpoints").exists() or not saved_steps(tmp_path / "w")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_sr_minimum_side_is_the_smallest_image_the_protocol_scores(scale):
  """`sr_min_side` against the protocol itself: an image of that side is scored, one pixel
  less is not (SSIM's window no longer fits after the crops)."""
  side = sr_min_side(scale)
  image = np.zeros((side, side, 3), np.uint8)
  assert len(evaluate_sr(None, [("ok", image)], scale)) == 1
  with pytest.raises(ValueError, match="win_size"):
    evaluate_sr(None, [("small", image[:-1, :-1])], scale)


def test_eval_names_a_test_image_too_small_in_one_line(tmp_path):
  folder = tmp_path / "set"
  folder.mkdir()
  Image.fromarray(np.zeros((12, 30, 3), np.uint8)).save(folder / "strip.png")
  out = run("eval.py", "--task", "sr", "--bicubic", "--config.eval.scale=4", "--dataset",
            str(folder), "--output", str(tmp_path / "out"))
  assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
  assert "strip.png (12×30) is smaller than the 20×20 pixels" in out.stderr


# --- errors in the data thread ----------------------------------------------------------------


def test_an_error_in_the_prefetch_thread_reaches_the_caller():
  def batches():
    yield np.zeros((2, 4, 4, 1), np.uint8)
    raise OSError("disk gone")

  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  with Prefetcher(batches(), sharding) as prefetcher:
    assert next(prefetcher).shape == (2, 4, 4, 1)
    with pytest.raises(OSError, match="disk gone"):
      next(prefetcher)


# --- the loss guard ---------------------------------------------------------------------------


def test_a_diverging_run_keeps_its_finite_checkpoints(tiny_folder, tmp_path):
  """Checkpoints every step, logs every 10: once the loss leaves float range nothing more is
  saved, the finite checkpoints stay, and the message names the newest of them."""
  workdir = tmp_path / "w"
  train_and_evaluate(tiny(tiny_folder, steps=2, **{"train.checkpoint_every": 1}), str(workdir))
  weights = (workdir / "weights.msgpack").read_bytes()
  wild = tiny(tiny_folder, steps=8, **{"train.checkpoint_every": 1, "train.log_every": 10,
                                       "optim.learning_rate": 1e30})
  with pytest.raises(TrainingError, match=r"non-finite .* at step (\d); nothing from it was "
                     r"saved: lower optim.learning_rate") as error:
    train_and_evaluate(wild, str(workdir))  # a new learning rate resumes the same run
  last = max(saved_steps(workdir))
  assert f"resumes from the last checkpoint, step {last}, which is finite" in str(error.value)
  assert last < int(str(error.value).split("at step ")[1].split(";")[0])
  checkpoints = Checkpoints(workdir)
  from sfm_jax.train.setup import build_task, initial_state, to_pure

  template = to_pure(initial_state(wild, build_task(wild)).state)
  for step in saved_steps(workdir):
    tree = checkpoints.restore(step, template)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(tree)), step
  checkpoints.close()
  assert (workdir / "weights.msgpack").read_bytes() == weights


def test_a_model_worse_than_its_input_writes_no_weights(tiny_folder, tmp_path):
  config = tiny(tiny_folder, steps=3, **{"optim.learning_rate": 1.0})
  config.train.require_improvement = True
  with pytest.raises(TrainingError, match="training ended below its input: noisy .* dB -> "
                     "denoised .* dB, so .*weights.msgpack was not written"):
    train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / "weights.msgpack").exists() and saved_steps(tmp_path) == [3]


# --- checkpoints and workdirs -----------------------------------------------------------------


def test_a_workdir_of_another_config_is_refused_and_left_alone(tiny_folder, tmp_path):
  train_and_evaluate(tiny(tiny_folder, steps=1), str(tmp_path))
  before = snapshot(tmp_path)
  other = shrink(load_config("quickstart"), tiny_folder, steps=2)
  other.model.kwargs.features = 16
  with pytest.raises(ConfigError, match=r"holds a run of another config \(model.kwargs.features:"
                     r" 8 -> 16\); use a new --workdir, or pass --force_resume"):
    train_and_evaluate(other, str(tmp_path))
  assert snapshot(tmp_path) == before
  # Run length, logging and evaluation fields may change: the run is extended.
  longer = tiny(tiny_folder, steps=2, **{"train.log_every": 2, "eval.sigma": 15.0})
  assert train_and_evaluate(longer, str(tmp_path))["step"] == 2


def test_a_corrupt_newest_checkpoint_is_reported_and_the_previous_one_used(
    tiny_folder, tmp_path, capsys):
  train_and_evaluate(tiny(tiny_folder, steps=2, **{"train.checkpoint_every": 1}), str(tmp_path))
  for file in (tmp_path / "checkpoints" / "2").rglob("*"):
    if file.is_file():
      file.write_bytes(file.read_bytes()[:len(file.read_bytes()) // 2])
  result = train_and_evaluate(tiny(tiny_folder, steps=3, **{"train.checkpoint_every": 1}),
                              str(tmp_path))
  out = capsys.readouterr()
  assert "the checkpoint at step 2 cannot be read" in out.err
  assert "Resuming from the checkpoint at step 1" in out.out
  assert [step for step, _ in result["losses"]] == [2, 3]


# --- the command line: one line, exit status 2 ------------------------------------------------


def run(script, *args):
  return subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)


@pytest.mark.parametrize("script, args, message", [
    ("train.py", ["--config", "configs/quickstart.py", "--config.train.steps=0"],
     "train.steps=0; use a positive number of steps"),
    ("eval.py", ["--task", "sr", "--bicubic", "--output", "{file}"], "is a file, not a folder"),
    ("eval.py", ["--task", "sr", "--bicubic", "--config.eval.blur_sigmas=-5"],
     "eval.blur_sigmas holds [-5"),
    ("train.py", ["--config", "{syntax}"], "syntax.py, line 2: '(' was never closed: 'c.seed = ('"),
    ("eval.py", ["--config", "{raises}", "--task", "sr", "--bicubic"],
     "raises.py, line 3 (get_config) raised KeyError: 'model'"),
])
def test_the_command_line_reports_one_line_and_exit_status_2(script, args, message, tmp_path):
  file = tmp_path / "report.txt"
  file.write_text("mine")
  (tmp_path / "syntax.py").write_text("def get_config():\n  c.seed = (\n")
  (tmp_path / "raises.py").write_text("def get_config():\n  settings = {}\n"
                                      "  return settings['model']\n")
  args = [a.format(file=file, syntax=tmp_path / "syntax.py", raises=tmp_path / "raises.py")
          for a in args]
  where = ["--workdir", str(tmp_path / "w")] if script == "train.py" else ["--dataset", "builtin"]
  out = run(script, *args, *where)
  errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
  assert out.returncode == 2 and len(errors) == 1 and message in errors[0], out.stderr[-2000:]
  assert "Traceback" not in out.stderr and file.read_text() == "mine"


def test_a_diverging_run_is_reported_as_one_line_and_exit_status_2(tiny_folder, tmp_path):
  """TrainingError is a RuntimeError, not a ValueError like ConfigError (the cases above) and
  DataError (test_train.py::test_a_user_error_is_one_line_and_exit_status_2): train.py reports
  a real divergence as one `error:` line and exit status 2 too, not as a crash."""
  fields = {"data.source": tiny_folder, "data.val_source": tiny_folder, "data.patch_size": 32,
            "data.stride": 16, "model.kwargs.num_layers": 3, "model.kwargs.features": 8,
            "train.steps": 4, "train.batch_size": 4, "train.log_every": 1,
            "eval.max_val_images": 1, "optim.learning_rate": 1e30}
  out = run("train.py", "--config", "configs/quickstart.py", "--workdir", str(tmp_path / "w"),
            *(f"--config.{k}={v}" for k, v in fields.items()))
  errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
  assert out.returncode == 2 and len(errors) == 1, out.stderr[-2000:]
  assert "became non-finite" in errors[0] and "lower optim.learning_rate" in errors[0]
  assert "Traceback" not in out.stderr


# --- the converter ----------------------------------------------------------------------------


@pytest.mark.parametrize("content, message", [
    (None, "not found; pass the path of a .pth file"),
    (bytes(range(256)) * 8, "cannot read .* as a PyTorch checkpoint .*download it again"),
    ("truncated", "cannot read .* as a PyTorch checkpoint .*download it again"),
])
def test_the_converter_reports_a_missing_random_or_cut_short_file(content, message, tmp_path,
                                                                  capsys):
  torch = pytest.importorskip("torch")
  from sfm_jax.convert.__main__ import main

  path = tmp_path / "net.pth"
  if content == "truncated":
    torch.save({"conv.weight": torch.zeros(8, 1, 3, 3)}, path)
    path.write_bytes(path.read_bytes()[:300])
  elif content is not None:
    path.write_bytes(content)
  assert main([str(path), "--arch", "dncnn", "--out", str(tmp_path / "out.msgpack")]) == 2
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
  assert not (tmp_path / "out.msgpack").exists()  # a failed conversion writes nothing


def test_a_file_that_is_not_a_weights_file_is_named(tmp_path):
  from sfm_jax.weights import load_weights

  (tmp_path / "notes.msgpack").write_bytes(b"x")  # valid msgpack (the integer 120)
  with pytest.raises(ValueError, match="is not an sfm-jax weights file"):
    load_weights(tmp_path / "notes.msgpack")


def test_a_weights_file_cut_short_is_called_damaged_not_foreign(tmp_path):
  from sfm_jax.models import get_model
  from sfm_jax.weights import load_weights, save_weights

  kwargs = {"num_layers": 3, "features": 4}
  save_weights(tmp_path / "w.msgpack", get_model("dncnn", **kwargs), "dncnn", kwargs)
  data = (tmp_path / "w.msgpack").read_bytes()
  (tmp_path / "w.msgpack").write_bytes(data[:len(data) // 2])
  with pytest.raises(ValueError, match="cut short or damaged.*copy it again"):
    load_weights(tmp_path / "w.msgpack")


# --- nothing of the user's is lost ----------------------------------------------------------


def test_a_full_disk_leaves_no_part_file_and_the_previous_file_intact(tmp_path, monkeypatch):
  import errno

  from sfm_jax import weights

  target = tmp_path / "weights.msgpack"
  target.write_bytes(b"the previous good file")

  def full_disk(fd):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(weights.os, "fsync", full_disk)
  with pytest.raises(OSError, match="No space left.*previous file is intact.*Free some disk"):
    weights.write_atomically(target, b"a new file")
  assert target.read_bytes() == b"the previous good file"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.msgpack"]


def test_a_disk_without_room_for_a_checkpoint_stops_training_in_one_line(
    tiny_folder, tmp_path, monkeypatch):
  """Free space below a checkpoint's size: CheckpointError before orbax writes anything, the
  previous checkpoints intact; with room again the same command resumes from the last one."""
  from sfm_jax.train import checkpoints

  config = tiny(tiny_folder, steps=4, **{"train.checkpoint_every": 2})
  real, calls = shutil.disk_usage, []
  monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: calls.append(path) or (
      real(path)._replace(free=0) if len(calls) > 1 else real(path)))  # room for step 2 only
  with pytest.raises(CheckpointError, match=r"is full \(0.0 MiB free where a checkpoint needs "
                     r"about .* MiB\); .* it resumes from the last complete checkpoint, step 2"):
    train_and_evaluate(config, str(tmp_path))
  assert saved_steps(tmp_path) == [2]
  assert not list((tmp_path / "checkpoints").glob("*tmp*"))
  monkeypatch.setattr(checkpoints.shutil, "disk_usage", real)
  assert [step for step, _ in train_and_evaluate(config, str(tmp_path))["losses"]] == [3, 4]


def test_a_disk_that_fills_during_a_save_leaves_no_partial_checkpoint(tiny_folder, tmp_path,
                                                                     monkeypatch, capsys):
  """Orbax's failure of a disk that fills while writing (as tensorstore words it) becomes one
  CheckpointError; the partial folder is removed and the earlier checkpoint kept."""
  from sfm_jax.train import checkpoints

  save = checkpoints.ocp.CheckpointManager.save

  def filling(manager, step, *args, **kwargs):
    if step < 4:
      return save(manager, step, *args, **kwargs)
    manager.wait_until_finished()  # as orbax does before a save
    (manager.directory / f"{step}.orbax-checkpoint-tmp").mkdir()
    raise ValueError('RESOURCE_EXHAUSTED: Error writing "model" in OCDBT database: Failed to '
                     "write 9891 bytes to file 15: No space left on device [os_error_code='28']")

  monkeypatch.setattr(checkpoints.ocp.CheckpointManager, "save", filling)
  config = tiny(tiny_folder, steps=6, **{"train.checkpoint_every": 2})
  with pytest.raises(CheckpointError, match="no space left while writing a checkpoint.*step 2"):
    train_and_evaluate(config, str(tmp_path))
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["2"]
  assert "Traceback" not in capsys.readouterr().err


def test_the_disk_full_noise_filter_drops_only_that_noise(monkeypatch):
  """While a Checkpoints is open: tensorstore's "Event loop is closed" (unraisable) and orbax's
  records of a full disk are dropped; any other error still reaches the console."""
  import logging

  from sfm_jax.train import checkpoints

  seen = []
  monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(str(u.exc_value)))
  noise = checkpoints._DiskFullNoise().install()
  try:
    def unraisable(error):
      sys.unraisablehook(type("U", (), {"exc_type": type(error), "exc_value": error,
                                        "exc_traceback": None, "err_msg": None,
                                        "object": None})())

    unraisable(RuntimeError("Event loop is closed"))
    unraisable(RuntimeError("something else"))
    assert seen == ["something else"]
    def record(message):
      return logging.LogRecord("absl", logging.ERROR, "f", 1, message, (), None)

    assert not noise.filter(record("Failed to write: No space left on device"))
    assert noise.filter(record("another failure"))
  finally:
    noise.uninstall()
  assert sys.unraisablehook is not noise._unraisable


def test_restore_gives_every_input_its_own_output(tmp_path, capsys):
  """a.png, a.PNG, a.jpg and a_png.png: four inputs, four outputs, each reported."""
  from sfm_jax.models import get_model
  from sfm_jax.restore import main
  from sfm_jax.weights import save_weights

  kwargs = {"num_layers": 3, "features": 4}
  save_weights(tmp_path / "w.msgpack", get_model("dncnn", **kwargs), "dncnn", kwargs)
  (tmp_path / "in").mkdir()
  for index, name in enumerate(("a.png", "a.PNG", "a.jpg", "a_png.png")):
    Image.fromarray(np.full((20, 24), 40 * index, np.uint8)).save(
        tmp_path / "in" / name, format="JPEG" if name.endswith("jpg") else "PNG")
  assert main(["--weights", str(tmp_path / "w.msgpack"), "--input", str(tmp_path / "in"),
               "--output", str(tmp_path / "out")]) == 0
  written = sorted(p.name.lower() for p in (tmp_path / "out").iterdir())
  assert len(written) == len(set(written)) == 4
  out = capsys.readouterr().out
  assert all(f"-> {tmp_path / 'out' / name}" in out for name in os.listdir(tmp_path / "out"))
  assert "restored 4 of 4 images" in out


def test_convert_never_replaces_a_file_that_is_not_its_own(tmp_path, capsys):
  from sfm_jax.convert.__main__ import main

  checkpoint = tmp_path / "net.pth"
  checkpoint.write_bytes(b"whatever the user had")
  notes = tmp_path / "notes.txt"
  notes.write_text("my notes")
  assert main([str(checkpoint), "--arch", "dncnn", "--out", str(checkpoint)]) == 2
  assert "is the checkpoint itself" in capsys.readouterr().err
  assert main([str(checkpoint), "--arch", "dncnn", "--out", str(notes)]) == 2
  assert "not an sfm-jax weights file" in capsys.readouterr().err
  assert checkpoint.read_bytes() == b"whatever the user had" and notes.read_text() == "my notes"


def test_clearing_the_cache_removes_only_what_it_wrote(tmp_path, monkeypatch, capsys):
  """SFM_JAX_CACHE pointing at a folder of the user's: --clear removes the cached weights (and
  a part file), keeps the user's files, and says what it removed."""
  from sfm_jax import pretrained

  monkeypatch.setenv("SFM_JAX_CACHE", str(tmp_path))
  (tmp_path / "thesis.tex").write_text("years of work")
  (tmp_path / "photos").mkdir()
  cached = pretrained.weights_path("sfm:dncnn_b")
  cached.write_bytes(b"converted")
  cached.with_suffix(".pth.part").write_bytes(b"cut download")
  assert pretrained.main(["--clear"]) == 0
  out = capsys.readouterr().out
  assert "removed 2 cached files" in out and cached.name in out
  assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "thesis.tex"]

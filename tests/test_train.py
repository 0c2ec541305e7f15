"""Training end to end on tiny data: every config, resume, multi-device equivalence, eval CSV."""

import csv
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
import scipy.fft
from flax import nnx
from PIL import Image
from test_metrics import reference_ssim

from sfm_jax.train.loop import train_and_evaluate
from sfm_jax.train.setup import build_model
from sfm_jax.weights import load_weights

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Configs with tests of their own: the two-network ones (test_adversarial) and kernel estimation.
OWN_TESTS = {"esrgan_x4", "natsr_x4", "fca", "nmd", "kernel_estimation"}
CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py") if p.stem not in OWN_TESTS)
# Small versions of each architecture, so a step compiles and runs in seconds on CPU.
TINY = {
    "dncnn": {"num_layers": 3, "features": 8},
    "memnet": {"features": 4, "num_memblock": 2, "num_resblock": 1},
    "n3net": {"features": 8, "depth": 3, "interm_features": 4, "k": 2, "patch_size": 4,
              "stride": 2, "window": 5, "embed_features": 8, "embed_depth": 2, "embed_out": 4},
    "ridnet": {"features": 16, "reduction": 4, "num_blocks": 1},
    "ffdnet": {"num_layers": 3, "features": 8},
    "dct_denoiser": {"patch": 4},
    "unet": {"features": 8},
    "rrdb": {"nb": 1, "nf": 8, "gc": 4},
    "rcan": {"groups": 1, "blocks": 1, "nf": 16},
    "rdn": {"blocks": 1, "layers": 2, "g0": 8, "g": 4},
    "frsr": {"nf": 8},
    "kmsr": {"nf": 8, "blocks": 1},
    "sftmd": {"nf": 8, "blocks": 1},
    "ikc_predictor": {"nf": 8},
    "ikc_corrector": {"nf": 8},
    "nmd": {"nf": 4},
    "fca_generator": {"nf": 8},
}


def load_config(name):
  spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def shrink(config, folder, steps=2):
  config.data.source = config.data.val_source = str(folder)
  config.data.patch_size, config.data.stride = {"sr": (24, 12)}.get(config.task.kind, (32, 16))
  config.data.scales, config.data.aug_copies = (1.0,), 0
  config.model.kwargs.update(TINY[config.model.name])
  config.train.steps, config.train.batch_size = steps, 4
  config.train.require_improvement = False  # a few steps need not beat the input
  config.train.log_every = 1
  config.train.eval_every = config.train.checkpoint_every = 10_000
  config.eval.max_val_images = 1
  return config


def load_state(path):
  model, _, _ = load_weights(path)
  return nnx.state(model)


def flat(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def provide_frozen_networks(config, folder):
  """For IKC's later stages: untrained tiny SFTMD / Predictor weights files in `folder`."""
  from sfm_jax.models import get_model
  from sfm_jax.weights import save_weights

  for field, name in (("sftmd_weights", "sftmd"), ("predictor_weights", "ikc_predictor")):
    if field in config.task and config.task.stage != name.removeprefix("ikc_"):
      kwargs = {"channels": 3, **TINY[name], **({"scale": 4} if name == "sftmd" else {})}
      save_weights(folder / f"{name}.msgpack", get_model(name, **kwargs), name, kwargs)
      config.task[field] = str(folder / f"{name}.msgpack")


# One full training run (data, step, checkpoint, validation, weights file) per task kind; every
# other config is checked by tracing its train step abstractly (`test_every_config_traces...`).
FULL_RUNS = ["dncnn_b_sfm", "n2n_unet", "n2s_unet", "rrdb_x4_sfm", "ikc_corrector"]


@pytest.mark.parametrize("name", FULL_RUNS)
def test_one_config_per_task_kind_trains_a_few_steps(name, tiny_folder, tmp_path):
  config = shrink(load_config(name), tiny_folder)
  provide_frozen_networks(config, tmp_path)
  before = flat(nnx.state(build_model(config), nnx.Param))
  result = train_and_evaluate(config, str(tmp_path))
  assert all(np.isfinite(loss) for _, loss in result["losses"])
  assert np.isfinite(result["psnr"]) and result["step"] == 2
  trained, _, _ = load_weights(tmp_path / "weights.msgpack")
  after = flat(nnx.state(trained, nnx.Param))
  assert after.shape == before.shape and not np.allclose(after, before)


def test_full_runs_cover_every_task_kind():
  assert ({load_config(n).task.kind for n in FULL_RUNS}
          == {load_config(n).task.kind for n in CONFIGS})


@pytest.mark.parametrize("name", sorted(set(CONFIGS) - set(FULL_RUNS)))
def test_every_config_traces_its_train_step(name, tiny_folder, tmp_path):
  """Task, model and optimiser of the config fit together: one train step traced abstractly
  (jax.eval_shape, no compilation) on a batch of its patch size; the loss is a finite scalar."""
  from sfm_jax.train.setup import build_task, initial_state, training_step

  config = shrink(load_config(name), tiny_folder)
  provide_frozen_networks(config, tmp_path)
  task = build_task(config)
  setup = initial_state(config, task)
  step, frozen = training_step(config, task, setup)
  size, channels = config.data.patch_size, config.data.channels
  patches = jax.ShapeDtypeStruct((4, size, size, channels), np.uint8)
  new_state, metrics = jax.eval_shape(step, setup.state, patches, np.int32(0), frozen)
  assert metrics["loss"].shape == () and metrics["loss"].dtype == np.float32
  assert (jax.tree.map(lambda x: (x.shape, x.dtype), new_state)
          == jax.tree.map(lambda x: (x.shape, x.dtype), setup.state))


def test_resumed_training_equals_uninterrupted(tiny_folder, tmp_path):
  def run(workdir, steps):
    config = shrink(load_config("quickstart"), tiny_folder, steps=steps)
    config.train.checkpoint_every = 2
    return train_and_evaluate(config, str(workdir))

  straight = run(tmp_path / "a", 4)
  run(tmp_path / "b", 2)
  resumed = run(tmp_path / "b", 4)
  assert [s for s, _ in resumed["losses"]] == [3, 4]
  np.testing.assert_allclose([l for _, l in resumed["losses"]],
                             [l for _, l in straight["losses"][2:]], rtol=1e-6)
  np.testing.assert_allclose(flat(load_state(tmp_path / "b" / "weights.msgpack")),
                             flat(load_state(tmp_path / "a" / "weights.msgpack")), atol=1e-6)


def test_diverging_loss_stops_with_a_clear_message(tiny_folder, tmp_path):
  from sfm_jax.errors import TrainingError

  config = shrink(load_config("quickstart"), tiny_folder, steps=6)
  config.optim.learning_rate = 1e12
  with pytest.raises(TrainingError, match="lower optim.learning_rate"):
    train_and_evaluate(config, str(tmp_path))


def test_ema_weights_are_the_moving_average(tiny_folder, tmp_path):
  """One step with decay d: EMA = d·initial + (1 − d)·trained, per parameter."""
  def run(workdir, decay):
    config = shrink(load_config("quickstart"), tiny_folder, steps=1)
    config.train.ema_decay = decay
    train_and_evaluate(config, str(workdir))
    return config

  config = run(tmp_path / "plain", 0.0)
  run(tmp_path / "ema", 0.25)
  initial = flat(nnx.state(build_model(config), nnx.Param))
  trained = flat(nnx.state(load_weights(tmp_path / "plain" / "weights.msgpack")[0], nnx.Param))
  ema = flat(nnx.state(load_weights(tmp_path / "ema" / "weights.msgpack")[0], nnx.Param))
  np.testing.assert_allclose(ema, 0.25 * initial + 0.75 * trained, atol=1e-6)


def test_fine_tuning_starts_from_a_weights_file(tiny_folder, tmp_path):
  from sfm_jax.models import get_model
  from sfm_jax.weights import save_weights

  config = shrink(load_config("quickstart"), tiny_folder, steps=1)
  start = get_model("dncnn", seed=7, **config.model.kwargs.to_dict())
  save_weights(tmp_path / "start.msgpack", start, "dncnn", config.model.kwargs.to_dict())
  config.model.init_weights = str(tmp_path / "start.msgpack")
  config.optim.learning_rate = 0.0  # parameters stay where they started
  train_and_evaluate(config, str(tmp_path / "run"))
  tuned = load_weights(tmp_path / "run" / "weights.msgpack")[0]
  np.testing.assert_allclose(flat(nnx.state(tuned, nnx.Param)), flat(nnx.state(start, nnx.Param)))
  config.model.name, config.model.kwargs = "memnet", {"channels": 1}
  with pytest.raises(ValueError, match="holds a 'dncnn' model"):
    build_model(config)


def multi_device_config(folder):
  config = shrink(load_config("quickstart"), folder, steps=4)
  config.train.batch_size = 8
  return config


MULTI_DEVICE_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
import jax
from test_train import multi_device_config
from sfm_jax.train.loop import train_and_evaluate
result = train_and_evaluate(multi_device_config({folder!r}), {workdir!r})
print("RESULT", json.dumps({{"devices": jax.device_count(), "losses": result["losses"]}}))
"""


def run_with_devices(count, folder, workdir):
  xla_flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}"
  env = dict(os.environ, XLA_FLAGS=xla_flags.strip(), JAX_PLATFORMS="cpu")
  script = MULTI_DEVICE_SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests"),
                                      folder=str(folder), workdir=str(workdir))
  out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       cwd=ROOT, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT"))
  return json.loads(line[len("RESULT "):])


def test_four_devices_follow_the_single_device_loss_trajectory(tiny_folder, tmp_path):
  """The same run on this process's one CPU device and, in a subprocess, on 4 forced ones."""
  assert jax.device_count() == 1
  one = train_and_evaluate(multi_device_config(tiny_folder), str(tmp_path / "one"))
  four = run_with_devices(4, tiny_folder, tmp_path / "four")
  assert four["devices"] == 4
  np.testing.assert_allclose([l for _, l in four["losses"]], [l for _, l in one["losses"]],
                             rtol=1e-4)


# --- eval.py ------------------------------------------------------------------------------


def reference_metrics(clean, restored):
  """PSNR, SSIM and the SFM test script's DCT-band MSE, computed here without sfm_jax."""
  mse = np.mean((restored - clean) ** 2)
  h, w = clean.shape
  d = np.sqrt(np.arange(h)[:, None] ** 2 + np.arange(w)[None, :] ** 2)
  center = 0.5 * np.sqrt(h * h + w * w)
  hp = np.where(d <= center, 0.0, 1.0)
  lp = np.where(d >= center, 0.0, 1.0)
  dc_out, dc_clean = scipy.fft.dctn(restored, norm="ortho"), scipy.fft.dctn(clean, norm="ortho")
  return {"psnr": 10 * np.log10(1 / mse),
          "ssim": reference_ssim(restored, clean),
          "dct_low_mse": np.mean((lp * dc_out - lp * dc_clean) ** 2),
          "dct_high_mse": np.mean((hp * dc_out - hp * dc_clean) ** 2)}


def test_eval_csv_values_recomputed_independently(tiny_folder, tmp_path):
  """eval.py with the identity DCT denoiser (ratio 0): the output is the clamped noisy image,
  which the test rebuilds from the documented noise seeding and scores with numpy/scipy/skimage."""
  from sfm_jax.models import get_model
  from sfm_jax.weights import save_weights

  save_weights(tmp_path / "identity.msgpack", get_model("dct_denoiser", patch=4, ratio=0.0),
               "dct_denoiser", {"patch": 4, "ratio": 0.0})
  out = subprocess.run(
      [sys.executable, "eval.py", "--weights", str(tmp_path / "identity.msgpack"), "--dataset",
       str(tiny_folder), "--config.eval.sigmas=15,50", "--output", str(tmp_path / "out")],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "oneDNN" not in out.stderr and "InitializeLog" not in out.stderr, out.stderr[-2000:]
  rows = list(csv.DictReader(open(tmp_path / "out" / "results.csv")))
  assert {"image", "sigma", "psnr", "ssim"} <= set(rows[0]) and len(rows) == 12
  names = sorted(p.name for p in tiny_folder.glob("*.png"))
  for row in rows:
    index, sigma = names.index(row["image"]), float(row["sigma"])
    clean = np.asarray(Image.open(tiny_folder / row["image"]), np.float64) / 255
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(0), index), int(sigma * 1000))
    noise = np.asarray(jax.random.normal(key, clean.shape + (1,)), np.float64)[..., 0]
    restored = np.clip(clean + noise * np.float32(sigma / 255), 0, 1)
    for name, value in reference_metrics(clean, restored).items():
      assert float(row[name]) == pytest.approx(value, rel=1e-4, abs=1e-6), (name, row)
  assert "15" in out.stdout and "50" in out.stdout


# --- bad input: one clear line ------------------------------------------------------------


def run_train(args, cwd=ROOT):
  return subprocess.run([sys.executable, "train.py", *args], cwd=cwd, capture_output=True,
                        text=True, timeout=600)


@pytest.mark.parametrize("override, message", [
    ({"data.source": "{missing}"}, "does not exist"),
    ({"data.source": "{empty}"}, "has no"),
    ({"data.source": "{corrupt}"}, "cannot read .*Remove or replace"),
    ({"data.patch_size": 64}, "smaller than the 64×64 training patch"),
    ({"model.name": "dncnnn"}, "unknown model 'dncnnn'"),
])
def test_bad_input_is_a_user_error_naming_the_fix(override, message, tiny_folder, tmp_path):
  from sfm_jax.cli import USER_ERRORS

  (tmp_path / "empty").mkdir()
  corrupt = tmp_path / "corrupt"
  corrupt.mkdir()
  (corrupt / "a.png").write_bytes(b"\x89PNG broken")
  config = shrink(load_config("quickstart"), tiny_folder, steps=1)
  for field, value in override.items():
    section, key = field.split(".")
    config[section][key] = value if not isinstance(value, str) else value.format(
        missing=tmp_path / "nope", empty=tmp_path / "empty", corrupt=corrupt)
  with pytest.raises(USER_ERRORS, match=message):
    train_and_evaluate(config, str(tmp_path / "w"))


def test_a_user_error_is_one_line_and_exit_status_2(tmp_path):
  out = run_train(["--config", "configs/quickstart.py", "--workdir", str(tmp_path / "w"),
                   f"--config.data.source={tmp_path / 'nope'}"])
  assert out.returncode == 2
  error_lines = [l for l in out.stderr.splitlines() if l.startswith("error:")]
  assert len(error_lines) == 1 and "does not exist" in error_lines[0], out.stderr[-2000:]
  assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args, message", [
    (["--config", "configs/quickstart.py", "--config.train.stepz=3"], 'Did you mean "steps"'),
    (["--config", "configs/quickstart.py", "--config.train.steps=abc"], "invalid literal"),
    (["--config", "configs/no_such_config.py"], "No such file or directory"),
    (["--config", "configs/quickstart.py", "--stepz=3"], "unknown flag --stepz"),
])
def test_bad_config_flags_give_one_clear_line(args, message, tmp_path):
  out = run_train([*args, "--workdir", str(tmp_path)])
  assert out.returncode == 2, out.stderr[-2000:]
  error_lines = [l for l in out.stderr.splitlines() if l.startswith("error:")]
  assert len(error_lines) == 1 and message in error_lines[0], out.stderr[-2000:]
  assert "Traceback" not in out.stderr


def test_the_run_explains_itself(tiny_folder, tmp_path, capsys):
  """The first log line gives its time, not a rate that counts the compilation; the last
  lines say where the weights are and the commands to use them."""
  config = shrink(load_config("quickstart"), tiny_folder, steps=3)
  train_and_evaluate(config, str(tmp_path / "w"))
  lines = capsys.readouterr().out.splitlines()
  steps = [line for line in lines if line.startswith("step ")]
  assert "with compilation" in steps[0] and "steps/s" not in steps[0]
  assert "steps/s" in steps[1] and "ETA" in steps[1]
  weights = tmp_path / "w" / "weights.msgpack"
  assert lines[-3] == f"Weights: {weights}" and weights.is_file()
  assert f"python eval.py --weights {weights}" in lines[-2]
  assert f"sfm-restore --weights {weights}" in lines[-1]

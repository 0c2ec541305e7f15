"""Preemption: SIGTERM (how schedulers preempt) or Ctrl-C during `train.py` saves a checkpoint
at the current step and exits with one line (143 / 130); rerunning the same command resumes to
the weights of an uninterrupted run, in one process and in two joined by jax.distributed (only
one of which receives the signal: both stop at the same step). Ctrl-C in restore and eval.py:
one line and status 130."""

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx
from test_distributed import free_port
from test_train import ROOT, flat

from sfm_jax.weights import load_weights

CONFIG = """
import sys
sys.path.insert(0, {tests!r})
from test_train import multi_device_config

def get_config():
  config = multi_device_config({folder!r})
  config.train.steps, config.train.log_every, config.train.checkpoint_every = {steps}, 1, 1000
  config.train.eval_every = 1000
  return config
"""


def write_config(tmp_path, folder, steps):
  path = tmp_path / f"config_{steps}.py"
  path.write_text(CONFIG.format(tests=str(ROOT / "tests"), folder=str(folder), steps=steps))
  return path


def train(config, workdir, process_id=None, port=0) -> subprocess.Popen:
  command = [sys.executable, str(ROOT / "train.py"), "--config", str(config), "--workdir",
             str(workdir)]
  if process_id is not None:
    command += ["--distributed", f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2", f"--process_id={process_id}"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.Popen(command, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)


def signal_after(process, step: int, signum: int, target=None) -> None:
  """Sends `signum` to `target` (default: the process itself) once `process` has logged
  `step` (only process 0 logs)."""
  for line in process.stdout:
    if line.startswith(f"step {step}/"):
      (target or process).send_signal(signum)
      return
  raise AssertionError(f"the run ended before step {step}: {process.stderr.read()[-2000:]}")


def finished(process) -> tuple[int, str]:
  out, err = process.communicate(timeout=300)
  return process.returncode, err


def weights(workdir):
  return flat(nnx.state(load_weights(workdir / "weights.msgpack")[0]))


@pytest.mark.parametrize("signum, status", [
    (signal.SIGTERM, 143), pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow)])
def test_a_signal_saves_the_step_and_the_rerun_ends_where_a_straight_run_does(
    signum, status, tiny_folder, tmp_path):
  config = write_config(tmp_path, tiny_folder, 12)
  run = train(config, tmp_path / "stopped")
  signal_after(run, 3, signum)
  code, err = finished(run)
  stopped_at = int(re.search(r"at step (\d+)/12 with a checkpoint saved there", err)[1])
  assert code == status and "Traceback" not in err and "rerun the same command" in err
  assert (tmp_path / "stopped" / "checkpoints" / str(stopped_at)).is_dir()
  assert not (tmp_path / "stopped" / "weights.msgpack").exists()
  assert finished(train(config, tmp_path / "stopped"))[0] == 0  # the same command again
  assert finished(train(config, tmp_path / "straight"))[0] == 0
  np.testing.assert_allclose(weights(tmp_path / "stopped"), weights(tmp_path / "straight"),
                             atol=1e-6)


@pytest.mark.slow  # five interpreters joined two by two
def test_two_processes_agree_on_the_step_when_one_is_preempted(tiny_folder, tmp_path):
  config = write_config(tmp_path, tiny_folder, 12)
  port = free_port()
  runs = [train(config, tmp_path / "multi", i, port) for i in range(2)]
  signal_after(runs[0], 3, signal.SIGTERM, target=runs[1])  # only process 1 is told
  results = [finished(run) for run in runs]
  assert [code for code, _ in results] == [143, 143], results[0][1][-2000:]
  steps = {re.search(r"at step (\d+)/12", err)[1] for _, err in results}
  assert len(steps) == 1 and (tmp_path / "multi" / "checkpoints" / steps.pop()).is_dir()
  port = free_port()
  resumed = [train(config, tmp_path / "multi", i, port) for i in range(2)]
  assert [finished(run)[0] for run in resumed] == [0, 0]
  assert finished(train(config, tmp_path / "straight"))[0] == 0
  np.testing.assert_allclose(weights(tmp_path / "multi"), weights(tmp_path / "straight"),
                             atol=1e-5)


def _wait_for(stream, text: str) -> str:
  """Reads `stream` (character by character: progress bars end lines with \\r) until `text`."""
  seen = ""
  while text not in seen:
    char = stream.read(1)
    if not char:
      raise AssertionError(f"{text!r} never came: {seen[-2000:]}")
    seen += char
  return seen


def test_ctrl_c_in_restore_and_eval_is_one_line_and_status_130(tiny_folder, tmp_path):
  """Restore keeps the images it finished (whole files) and says how to go on; eval.py says
  that no report was written. Neither prints a traceback."""
  from PIL import Image

  from sfm_jax.models import get_model
  from sfm_jax.weights import save_weights

  kwargs = {"num_layers": 3, "features": 4}
  save_weights(tmp_path / "w.msgpack", get_model("dncnn", **kwargs), "dncnn", kwargs)
  (tmp_path / "in").mkdir()
  for i in range(80):  # enough that the signal lands before the last one, even on a fast CPU
    Image.fromarray(np.full((300, 300), 3 * i, np.uint8)).save(tmp_path / "in" / f"{i:02d}.png")
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")  # lines as they happen
  restore = subprocess.Popen(
      [sys.executable, "-m", "sfm_jax.restore", "--weights", str(tmp_path / "w.msgpack"),
       "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")],
      cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  _wait_for(restore.stdout, "01.png ->")
  restore.send_signal(signal.SIGINT)
  _, err = restore.communicate(timeout=120)
  written = sorted((tmp_path / "out").iterdir())
  assert restore.returncode == 130 and "Traceback" not in err, err[-2000:]
  assert re.search(rf"{len(written)} of 80 images were restored", err) and "rerun" in err
  assert all(Image.open(path).size == (300, 300) for path in written)  # whole files only

  evaluate = subprocess.Popen(
      [sys.executable, str(ROOT / "eval.py"), "--weights", str(tmp_path / "w.msgpack"),
       "--dataset", str(tmp_path / "in"), "--output", str(tmp_path / "eval")],
      cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  _wait_for(evaluate.stderr, "images:")
  evaluate.send_signal(signal.SIGINT)
  _, err = evaluate.communicate(timeout=120)
  assert evaluate.returncode == 130 and "Traceback" not in err, err[-2000:]
  assert "interrupted: eval.py writes its reports" in err
  assert not (tmp_path / "eval" / "summary.json").exists()

"""Multi-host training on one machine: two processes joined by jax.distributed on 127.0.0.1, one
CPU device each, trained 10 steps, stopped, resumed to 20: the same weights as one process with
two forced CPU devices run straight to 20."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx
from test_train import ROOT, flat

from sfm_jax.weights import load_weights

SCRIPT = """
import json, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from sfm_jax import cli
if {process_id} is not None:
  cli.start_distributed("127.0.0.1:{port}", 2, {process_id})
import jax
from test_train import multi_device_config
from sfm_jax.train.loop import train_and_evaluate
config = multi_device_config({folder!r})
config.data.pipeline = {pipeline!r}
config.train.steps, config.train.checkpoint_every = {steps}, 5
result = train_and_evaluate(config, {workdir!r})
print("RESULT", json.dumps({{"devices": jax.device_count(), "processes": jax.process_count(),
                            "losses": result["losses"]}}))
"""


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start(folder, workdir, steps, process_id=None, port=0, devices=1, pipeline="fixed"):
  script = SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests"), folder=str(folder),
                         workdir=str(workdir), steps=steps, process_id=process_id, port=port,
                         pipeline=pipeline)
  flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
  env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
  return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process) -> dict:
  try:
    out, err = process.communicate(timeout=300)
  except subprocess.TimeoutExpired:
    process.kill()
    raise
  assert process.returncode == 0, err[-3000:]
  line = next(l for l in out.splitlines() if l.startswith("RESULT"))
  return json.loads(line[len("RESULT "):])


def two_processes(folder, workdir, steps, pipeline) -> list[dict]:
  port = free_port()
  processes = [start(folder, workdir, steps, i, port, pipeline=pipeline) for i in range(2)]
  return [finish(p) for p in processes]


@pytest.mark.slow  # six interpreters, ~70 s here for each pipeline
@pytest.mark.parametrize("pipeline", ["fixed", "stream"])
def test_two_processes_resume_to_the_single_process_result(pipeline, tiny_folder, tmp_path):
  """Streamed, each process reads its own part of every batch and saves its own position."""
  first = two_processes(tiny_folder, tmp_path / "multi", 10, pipeline)
  assert [r["processes"] for r in first] == [2, 2] and first[0]["devices"] == 2
  if pipeline == "stream":
    saved = (tmp_path / "multi" / "checkpoints" / "10" / "data").glob("*.json")
    assert sorted(p.name for p in saved) == ["process_0-of-2.json", "process_1-of-2.json"]
  resumed = two_processes(tiny_folder, tmp_path / "multi", 20, pipeline)
  assert [step for step, _ in resumed[0]["losses"]][0] == 11  # resumed, not restarted
  single = finish(start(tiny_folder, tmp_path / "single", 20, devices=2, pipeline=pipeline))
  assert single["devices"] == 2 and single["processes"] == 1
  np.testing.assert_allclose([l for _, l in resumed[0]["losses"]],
                             [l for s, l in single["losses"] if s > 10], rtol=1e-5)
  multi, _, _ = load_weights(tmp_path / "multi" / "weights.msgpack")
  straight, _, _ = load_weights(tmp_path / "single" / "weights.msgpack")
  np.testing.assert_allclose(flat(nnx.state(multi)), flat(nnx.state(straight)), atol=1e-5)

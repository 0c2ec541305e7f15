"""The ops on batch-sharded inputs, on 2 forced CPU devices (in a subprocess: the device count is
fixed when JAX starts): under an explicit mesh they give the unsharded values and keep the batch
sharding; inside jax.shard_map they run per shard; an empty batch gives an empty batch."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from sfm_jax import ops

SCRIPT = """
import json
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import AxisType, PartitionSpec as P
from sfm_jax import ops

key = jax.random.key(0)
x = jax.random.uniform(jax.random.key(1), (4, 16, 16, 2))
kernel = ops.gaussian_kernel(5, 1.2)
masks = ops.apply_sfm(key, x, rate=0.5)[1]
OPS = {
    "apply_sfm": lambda a, m: ops.apply_sfm(key, a, rate=0.5)[0],
    "apply_masks": lambda a, m: ops.apply_masks(a, m),
    "masked_gaussian_noise": lambda a, m: ops.masked_gaussian_noise(key, m, 25.0, 2),
    "dct2": lambda a, m: ops.dct2(a),
    "idct2": lambda a, m: ops.idct2(a),
    "blur": lambda a, m: ops.blur(a, kernel),
}
mesh = jax.make_mesh((2,), ("data",), axis_types=(AxisType.Explicit,))
results = {}
for name, op in OPS.items():
  reference = op(x, masks)
  with jax.set_mesh(mesh):
    xs, ms = jax.device_put(x, P("data")), jax.device_put(masks, P("data"))
    explicit = jax.jit(op)(xs, ms)
    per_shard = jax.shard_map(op, in_specs=(P("data"), P("data")), out_specs=P("data"))(xs, ms)
  first_half = op(x[:2], masks[:2])  # what shard 0 sees inside shard_map
  results[name] = {
      "explicit_error": float(np.abs(np.asarray(explicit) - np.asarray(reference)).max()),
      "explicit_spec": str(jax.typeof(explicit).sharding.spec),
      "shard_map_error": float(np.abs(np.asarray(per_shard)[:2] - np.asarray(first_half)).max()),
  }
print("RESULT", json.dumps({"devices": jax.device_count(), "ops": results}))
"""


@pytest.fixture(scope="module")
def sharded_results():
  flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
  env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT"))
  results = json.loads(line[len("RESULT "):])
  assert results["devices"] == 2
  return results["ops"]


@pytest.mark.parametrize("name", ["apply_sfm", "apply_masks", "masked_gaussian_noise", "dct2",
                                  "idct2", "blur"])
def test_ops_on_a_batch_sharded_over_two_devices(name, sharded_results):
  result = sharded_results[name]
  assert result["explicit_error"] < 1e-6
  assert "'data'" in result["explicit_spec"].split(",")[0]  # the batch stays sharded
  assert result["shard_map_error"] < 1e-6


@pytest.mark.parametrize("op", [
    lambda x: ops.apply_sfm(jax.random.key(0), x)[0],
    lambda x: ops.apply_masks(x, jnp.ones(x.shape[:3])),
    lambda x: ops.dct2(x),
    lambda x: ops.idct2(x),
    lambda x: ops.blur(x, ops.gaussian_kernel(5, 1.0)),
], ids=["apply_sfm", "apply_masks", "dct2", "idct2", "blur"])
def test_an_empty_batch_gives_an_empty_batch(op):
  assert op(jnp.zeros((0, 16, 16, 1))).shape == (0, 16, 16, 1)

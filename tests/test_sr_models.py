"""SR networks: parameter counts against the originals and sub-pixel orderings."""

import jax.numpy as jnp
import numpy as np
import pytest

from sfm_jax.models import count_params, get_model
from sfm_jax.models.sr import depth_to_space

# Forward-pass parameter counts of the originals: SFM's `SR/model/` and `SR/IKC/` networks,
# JWSoh/NatSR's FRSR (`model.py`) and the RDN (yjn870/RDN-pytorch) of the MVA24-delire TP.
PARAMS = [
    ("rrdb", {"channels": 1, "scale": 4}, 16_880_321),  # released state_dict: 17,065,538 incl. dead
    ("rcan", {"channels": 1, "scale": 4}, 15_590_049),
    ("kmsr", {}, 1_185_152),
    ("sftmd", {}, 7_966_147 - 16 * 233_216),  # less the unused sft_branch (16 SFT blocks)
    ("ikc_predictor", {}, 430_730),
    ("ikc_corrector", {}, 649_930),
    ("frsr", {"scale": 4}, 4_959_235),
    ("frsr", {"scale": 2}, 4_811_523),
    ("frsr", {"scale": 3}, 4_996_163),
    ("rdn", {"scale": 2}, 22_123_395),
]


@pytest.mark.parametrize("name, kwargs, expected", PARAMS)
def test_sr_parameter_counts_match_the_originals(name, kwargs, expected):
  # Built for real: tracing these constructors (nnx.eval_shape) takes minutes, building seconds.
  assert count_params(get_model(name, **kwargs)) == expected


def test_depth_to_space_matches_tf_definition():
  r, c = 3, 2
  x = np.arange(2 * 3 * 4 * c * r * r, dtype=np.float32).reshape(2, 3, 4, c * r * r)
  y = np.asarray(depth_to_space(jnp.asarray(x), r))
  for i in range(r):
    for j in range(r):
      for ch in range(c):
        np.testing.assert_array_equal(y[:, i::r, j::r, ch], x[..., (i * r + j) * c + ch])


@pytest.mark.parametrize("name, kwargs, shape, out", [
    ("rrdb", {"nb": 1, "nf": 8, "gc": 4}, (1, 6, 5, 1), (1, 24, 20, 1)),
    ("rrdb", {"nb": 1, "nf": 8, "gc": 4, "esrgan_upsampler": True}, (1, 6, 5, 1), (1, 24, 20, 1)),
    ("rcan", {"groups": 1, "blocks": 1, "nf": 16, "scale": 3}, (1, 5, 4, 1), (1, 15, 12, 1)),
    ("rdn", {"blocks": 2, "layers": 2, "g0": 8, "g": 4}, (2, 5, 6, 3), (2, 10, 12, 3)),
    ("frsr", {"nf": 8, "scale": 4}, (1, 4, 4, 3), (1, 16, 16, 3)),
    ("kmsr", {"nf": 8, "blocks": 1}, (1, 9, 9, 3), (1, 9, 9, 3)),
])
def test_sr_forward_shapes(name, kwargs, shape, out):
  y = get_model(name, **kwargs)(jnp.full(shape, 0.5))
  assert y.shape == out and bool(jnp.all(jnp.isfinite(y)))


def test_ikc_models_take_kernel_codes():
  code = jnp.linspace(0, 1, 20).reshape(2, 10)
  lr = jnp.full((2, 8, 8, 3), 0.5)
  sr = get_model("sftmd", nf=8, blocks=1)(lr, code)
  assert sr.shape == (2, 32, 32, 3) and float(sr.min()) >= 0 and float(sr.max()) <= 1
  assert get_model("ikc_predictor", nf=8)(lr).shape == (2, 10)
  assert get_model("ikc_corrector", nf=8)(sr, code).shape == (2, 10)

"""Model structure: parameter counts against the originals, orderings, and exact references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft

from sfm_jax.models import count_params, get_model
from sfm_jax.models.layers import pixel_shuffle, pixel_unshuffle

# Trainable parameter counts of the originals: SFM's `Denoising/models.py` (DnCNN, MemNet,
# RIDNet) and `Denoising/Microscopy/models/unet.py`, and the FFDNet of the MVA24-delire TP.
PARAMS = [
    ("dncnn", {}, 556_032),
    ("memnet", {}, 194_922),
    ("ridnet", {}, 1_497_045),
    ("ffdnet", {}, 486_080),
    ("ffdnet", {"channels": 3}, 854_688),
    ("unet", {}, 987_408),
]


@pytest.mark.parametrize("name, kwargs, expected", PARAMS)
def test_parameter_counts_match_the_originals(name, kwargs, expected):
  from flax import nnx

  assert count_params(nnx.eval_shape(lambda: get_model(name, **kwargs))) == expected


@pytest.mark.parametrize("name, kwargs, shape", [
    ("dncnn", {"num_layers": 4, "features": 8}, (2, 17, 23, 1)),
    ("memnet", {"features": 4, "num_memblock": 2, "num_resblock": 1}, (2, 16, 20, 1)),
    ("ridnet", {"features": 16, "reduction": 4, "num_blocks": 1, "channels": 3}, (1, 12, 12, 3)),
    ("ffdnet", {"num_layers": 3, "features": 8, "channels": 3}, (2, 16, 20, 3)),
    ("unet", {"features": 8}, (1, 64, 32, 1)),
    ("dct_denoiser", {"patch": 5}, (2, 16, 12, 1)),
])
def test_forward_keeps_the_image_shape_and_jits(name, kwargs, shape):
  model = get_model(name, **kwargs)
  model.eval()
  x = jnp.full(shape, 0.5, jnp.float32)
  y = jax.jit(lambda x: model(x, jnp.full((shape[0],), 0.1)))(x)
  assert y.shape == shape and bool(jnp.all(jnp.isfinite(y)))


def test_dncnn_is_residual_and_memnet_has_the_global_skip():
  for name in ("dncnn", "memnet"):
    model = get_model(name)
    model.eval()
    x = jnp.asarray(np.random.default_rng(0).random((1, 16, 16, 1), np.float32))
    # Zeroing the last conv leaves only the skip connection: output == input.
    last = model.body.convs[-1] if name == "dncnn" else model.reconstructor.conv
    last.kernel[...] = jnp.zeros_like(last.kernel[...])
    np.testing.assert_allclose(model(x), x, atol=1e-7)


def test_pixel_shuffle_ordering_matches_pytorch_definition():
  r, c = 2, 3
  x = np.arange(1 * 4 * 5 * c * r * r, dtype=np.float32).reshape(1, 4, 5, c * r * r)
  y = np.asarray(pixel_shuffle(jnp.asarray(x), r))
  for ch in range(c):
    for i in range(r):
      for j in range(r):
        np.testing.assert_array_equal(y[0, i::r, j::r, ch], x[0, :, :, ch * r * r + i * r + j])
  np.testing.assert_array_equal(pixel_unshuffle(jnp.asarray(y), r), x)


def test_ffdnet_input_is_noise_map_then_interleaved_subimages():
  """Channel k of the body input: k < C the noise level, then idx + 4c with idx over
  (0,0), (0,1), (1,0), (1,1) — Tassano's `concatenate_input_noise_map`."""
  model = get_model("ffdnet", channels=3, num_layers=3, features=4)
  seen = {}
  original = type(model.body).__call__

  def spy(self, x):
    seen["x"] = x
    return original(self, x)

  type(model.body).__call__ = spy
  try:
    img = np.random.default_rng(1).random((1, 4, 6, 3), np.float32)
    model(jnp.asarray(img), jnp.array([0.2]))
  finally:
    type(model.body).__call__ = original
  x = np.asarray(seen["x"])
  np.testing.assert_allclose(x[..., :3], 0.2)
  for c in range(3):
    for idx, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
      np.testing.assert_array_equal(x[0, :, :, 3 + idx + 4 * c], img[0, dy::2, dx::2, c])


def reference_dct_denoiser(img, threshold, n):
  """The practical's algorithm, patch by patch with scipy."""
  h, w = img.shape
  out, count = np.zeros((h, w)), np.zeros((h, w))
  for i in range(h - n + 1):
    for j in range(w - n + 1):
      coeffs = scipy.fft.dctn(img[i:i + n, j:j + n], norm="ortho")
      coeffs[np.abs(coeffs) < threshold] = 0
      out[i:i + n, j:j + n] += scipy.fft.idctn(coeffs, norm="ortho")
      count[i:i + n, j:j + n] += 1
  return out / count


def test_dct_denoiser_matches_patchwise_reference_and_is_identity_at_ratio_0():
  rng = np.random.default_rng(0)
  img = rng.random((14, 11)).astype(np.float32)
  x = jnp.asarray(img)[None, :, :, None]
  identity = get_model("dct_denoiser", patch=5, ratio=0.0)
  np.testing.assert_allclose(identity(x, jnp.array([0.1]))[0, :, :, 0], img, atol=1e-5)
  model = get_model("dct_denoiser", patch=5, ratio=2.7)
  want = reference_dct_denoiser(img.astype(np.float64), 2.7 * 0.1, 5)
  np.testing.assert_allclose(model(x, jnp.array([0.1]))[0, :, :, 0], want, atol=1e-5)


def test_learnable_threshold_gets_a_finite_gradient():
  from flax import nnx

  model = get_model("dct_denoiser", patch=4, ratio=2.0, threshold="dhard", learnable=True)
  rng = np.random.default_rng(0)
  clean = jnp.asarray(rng.random((2, 12, 12, 1), np.float32))
  noisy = clean + 0.1 * jnp.asarray(rng.normal(size=clean.shape).astype(np.float32))
  grads = nnx.grad(lambda m: jnp.mean((m(noisy, jnp.array([0.1, 0.1])) - clean) ** 2))(model)
  g = float(grads["ratio"][...])
  assert np.isfinite(g) and g != 0


@pytest.mark.parametrize("name, kwargs, message", [
    ("dnccn", {}, "unknown model 'dnccn'"),
    ("dncnn", {"layers": 3}, "bad arguments for model 'dncnn'"),
    ("dct_denoiser", {"threshold": "firm"}, "threshold='firm'"),
])
def test_registry_errors_name_the_fix(name, kwargs, message):
  with pytest.raises(ValueError, match=message):
    get_model(name, **kwargs)

"""N3Net (sfm_jax.models.n3net): the original's parameter count, the continuous kNN relaxation
against numpy, the hard nearest neighbours at temperature → 0, parity with a PyTorch reference
written from visinf/n3net's equations (tests/torch_nets.py), and a tiny run of the training
loop on the two configs."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sfm_jax.models import count_params, get_model, model_card
from sfm_jax.models.n3net import continuous_knn, extract_patches, fold_patches, patch_grid

ROOT = pathlib.Path(__file__).resolve().parents[1]
# A small N3Net whose patch grid on ~30×40 images is larger than its search window, so windows
# are clamped at the borders and (with query_block 4) queries are matched in overlapping blocks.
SMALL = {"features": 8, "depth": 3, "interm_features": 4, "k": 3, "patch_size": 4, "stride": 2,
         "window": 5, "embed_features": 8, "embed_depth": 2, "embed_out": 4}


def original_parameter_count(channels=1, stages=3, features=64, depth=6, interm=8, k=7,
                             embed_features=64, embed_depth=3, embed_out=8):
  """Per layer, from visinf/n3net `models/n3net.py` (`DnCNN`, `cnn_from_def`, `N3Block`) and
  `non_local.py` (the distance BatchNorm1d(1)), with the arguments of SFM's
  `Denoising/N3Net/main.py`. Returns (forward-pass parameters, state_dict parameters): each
  DnCNN also builds a BatchNorm `bn1` that its forward never calls."""
  def conv(cin, cout, bias):
    return 9 * cin * cout + (cout if bias else 0)

  def dncnn(cin, cout):  # conv1 (bias), (depth − 2) × [conv, BN], conv2 (bias)
    return (conv(cin, features, True) + (depth - 2) * (conv(features, features, False)
                                                       + 2 * features)
            + conv(features, cout, True))

  def embedding(cin, cout):  # (depth − 1) × [conv without bias, BN], conv (bias)
    widths = [cin] + [embed_features] * (embed_depth - 2)
    return (sum(conv(a, embed_features, False) + 2 * embed_features for a in widths)
            + conv(embed_features, cout, True))

  n3block = embedding(interm, embed_out) + embedding(interm, 1) + 2  # + distance BN
  total = dncnn(channels, interm) + (stages - 2) * dncnn((k + 1) * interm, interm)
  total += dncnn((k + 1) * interm, channels) + (stages - 1) * n3block
  return total, total + stages * 2 * features


def test_parameter_count_is_the_originals():
  forward, state_dict = original_parameter_count()
  assert (forward, state_dict) == (705_511, 705_895)  # 705,895: the released checkpoint's
  model = nnx.eval_shape(lambda: get_model("n3net"))
  assert count_params(model) == forward
  small = nnx.eval_shape(lambda: get_model("n3net", **SMALL))
  assert count_params(small) == original_parameter_count(
      features=8, depth=3, interm=4, k=3, embed_features=8, embed_depth=2, embed_out=4)[0]


def test_card():
  card = model_card("n3net")
  assert card.role == "denoiser" and card.protocol == "denoise" and card.size_multiple == 1
  # 3 stages × 6 convs + 2 blocks × (7 patches × 5 + 9 + 3 embedding convs)
  assert card.receptive_field == 3 * 6 + 2 * (7 * 5 + 9 + 3) and card.global_context


def test_forward_keeps_the_shape_and_is_finite():
  """Odd sizes (a 7 × 10 patch grid, window 5)."""
  model = get_model("n3net", **SMALL)
  x = jax.random.uniform(jax.random.key(0), (1, 16, 21, 1))
  y = nnx.jit(lambda m, x: m(x))(model, x)
  assert y.shape == x.shape and bool(jnp.all(jnp.isfinite(y)))


def test_the_default_network_on_a_training_patch():
  model = nnx.eval_shape(lambda: get_model("n3net"))
  out = nnx.eval_shape(lambda m: m(jnp.zeros((2, 80, 80, 1))), model)
  assert out.shape == (2, 80, 80, 1)
  grid = patch_grid(80, 80, 10, 5, 15, 7)  # 15 × 15 patches: one window holds them all
  assert grid.pad == (0, 0, 0, 0) and grid.query.shape == (1, 225)
  grid = patch_grid(321, 481, 10, 5, 15, 7)  # a BSD68 image: padded to 325 × 485
  assert grid.pad == (2, 2, 2, 2) and grid.rows.shape == (64, 10) and grid.cols.shape[0] == 96
  assert grid.query.shape == (24, 256) and grid.database.shape == (24, 900)  # 4 × 6 blocks
  grid = patch_grid(60, 60, 10, 5, 15, 7)  # 11 × 11 patches: the window is the whole grid
  assert grid.window == (11, 11) and not grid.query_start.any()


def test_too_small_an_image_is_a_clear_error():
  with pytest.raises(ValueError, match="k = 7 neighbours need at least k"):
    patch_grid(10, 12, 10, 5, 15, 7)


def test_fold_inverts_extract():
  grid = patch_grid(23, 17, 4, 2, 5, 3)
  x = jax.random.normal(jax.random.key(1), (2, 23, 17, 3))
  patches = extract_patches(x, grid).reshape(2, -1, 4, 4, 3)
  np.testing.assert_allclose(fold_patches(patches, grid, 23, 17), x, atol=1e-6)


def numpy_knn(logits, k):
  """The paper's recursion: w¹ = softmax(α), αʳ⁺¹ = αʳ + log(1 − wʳ)."""
  alpha = np.asarray(logits, np.float64)
  out = []
  for _ in range(k):
    e = np.exp(alpha - alpha.max(-1, keepdims=True))
    w = e / e.sum(-1, keepdims=True)
    out.append(w)
    alpha = alpha + np.log1p(-w)
  return np.stack(out, -1)


def test_continuous_knn_matches_numpy():
  logits = np.random.default_rng(0).normal(size=(4, 9)) * 3
  weights = np.asarray(continuous_knn(jnp.asarray(logits, jnp.float32), 4))
  np.testing.assert_allclose(weights, numpy_knn(logits, 4), atol=1e-6)
  np.testing.assert_allclose(weights.sum(-2), 1.0, atol=1e-6)
  grads = jax.jit(jax.grad(lambda a: continuous_knn(a, 4)[..., 0, :].sum()))(jnp.asarray(logits))
  assert bool(jnp.all(jnp.isfinite(grads)))


def test_at_temperature_zero_the_weights_are_the_hard_nearest_neighbours():
  distances = np.random.default_rng(1).permutation(12).astype(np.float32) + 1.0
  weights = np.asarray(continuous_knn(jnp.asarray(-distances / 1e-3), 5))
  np.testing.assert_allclose(weights, np.eye(12)[:, np.argsort(distances)[:5]], atol=1e-6)


def test_at_temperature_zero_the_block_returns_the_nearest_patches():
  """A whole N³ block with temp_bias → 0: volume r of each patch is the r-th nearest patch (in
  embedding distance, within its window) of the input; checked against a numpy search. (At
  float32, "→ 0" must make the logit gaps of near-tied distances dwarf the rounding of
  log(1 − w) near w = 1, about −16: 1e-12 here.)"""
  model = get_model("n3net", **{**SMALL, "temp_bias": 1e-12})
  model.eval()  # distance BatchNorm with running statistics: monotone, as the temperature
  block = model.blocks[0]
  block.query_block = 4
  x = jax.random.uniform(jax.random.key(2), (1, 20, 24, 4))
  out = np.asarray(nnx.jit(lambda b, x: b(x))(block, x))
  embedded = np.asarray(block.embed(x), np.float64)[0]
  n1, n2, p, s, w, k = 9, 11, 4, 2, 5, 3
  volumes = np.zeros((k, 20, 24, 4))
  counts = np.zeros((20, 24, 1))
  xin = np.asarray(x, np.float64)[0]
  def patch(a, i, j):
    return a[i * s:i * s + p, j * s:j * s + p]

  for i in range(n1):
    for j in range(n2):
      r0, c0 = min(max(i - w // 2, 0), n1 - w), min(max(j - w // 2, 0), n2 - w)
      cands = [(r, c) for r in range(r0, r0 + w) for c in range(c0, c0 + w) if (r, c) != (i, j)]
      d = [np.sum((patch(embedded, r, c) - patch(embedded, i, j)) ** 2) for r, c in cands]
      for rank, o in enumerate(np.argsort(d)[:k]):
        volumes[rank, i * s:i * s + p, j * s:j * s + p] += patch(xin, *cands[o])
      counts[i * s:i * s + p, j * s:j * s + p] += 1
  expected = np.concatenate([xin] + [v / counts - xin for v in volumes], -1)
  np.testing.assert_allclose(out[0], expected, atol=2e-5)


def to_torch(model, torch):
  """The PyTorch reference (float64) with `model`'s weights and BatchNorm statistics."""
  from torch_nets import N3NetRef

  state = {}
  names = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
           "var": "running_var"}
  for path, value in nnx.to_flat_state(nnx.state(model)):
    array = np.asarray(value[...], np.float64)
    if path[-1] == "kernel":
      array = array.transpose(3, 2, 0, 1)
    state[".".join(map(str, path[:-1])) + "." + names[path[-1]]] = torch.tensor(array)
  reference = N3NetRef(**SMALL).double()
  expected = {k for k in reference.state_dict() if not k.endswith("num_batches_tracked")}
  assert set(state) == expected
  reference.load_state_dict(state, strict=False)
  return reference


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_parity_with_the_pytorch_reference(mode):
  torch = pytest.importorskip("torch")
  model = get_model("n3net", **SMALL)
  for block in model.blocks:
    block.query_block = 4  # 15 × 18 patch grids in overlapping 4 × 4 query blocks
  rng = np.random.default_rng(3)
  for path, value in nnx.to_flat_state(nnx.state(model, nnx.BatchStat)):
    shape = value[...].shape
    value[...] = jnp.asarray(rng.normal(size=shape) * 0.1 if path[-1] == "mean"
                             else rng.uniform(0.5, 2.0, size=shape), jnp.float32)
  reference = to_torch(model, torch)
  getattr(model, mode)()
  getattr(reference, mode)()
  x = rng.uniform(size=(2, 31, 37, 1)).astype(np.float32)
  with torch.no_grad():
    expected = reference(torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64))
  got = np.asarray(nnx.jit(lambda m, x: m(x))(model, jnp.asarray(x)))
  np.testing.assert_allclose(got, expected.numpy().transpose(0, 2, 3, 1), atol=1e-4)


def load_config(name):
  spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def test_configs_carry_the_release_recipe():
  regular, sfm = load_config("n3net"), load_config("n3net_sfm")
  assert regular.model.name == sfm.model.name == "n3net"
  assert regular.train.batch_size == 32 and regular.data.patch_size == 80
  assert regular.train.steps == 51 * 1600 and tuple(regular.task.sigma_range) == (0.0, 55.0)
  # lr of epoch e = 1e-3 · 10^(−e/10): at the last epoch (50) 1e-8
  assert len(regular.optim.decay_steps) == 50
  assert regular.optim.learning_rate * regular.optim.decay_factor ** 50 == pytest.approx(1e-8)
  assert regular.task.sfm_rate == 0.0
  assert (sfm.task.sfm_rate, sfm.task.sfm_mode, sfm.task.sfm_radius_perc,
          sfm.task.sfm_sigma_perc) == (0.5, "targeted", 0.85, 0.15)
  assert tuple(sfm.eval.sigmas) == tuple(range(10, 101, 10))


@pytest.mark.parametrize("name", ["n3net_sfm"])
def test_a_tiny_n3net_trains_through_the_loop(name, tiny_folder, tmp_path):
  from sfm_jax.train.loop import train_and_evaluate
  from sfm_jax.weights import load_weights

  config = load_config(name)
  config.data.source = config.data.val_source = str(tiny_folder)
  config.data.patch_size, config.data.scales = 32, (1.0,)
  tiny = {**SMALL, "num_stages": 2, "k": 2}  # one N³ block: a quicker compile
  config.model.kwargs.update(tiny)
  config.train.steps, config.train.batch_size = 3, 4
  config.train.require_improvement = False
  config.train.log_every = 1
  config.train.eval_every = config.train.checkpoint_every = 10_000
  config.eval.max_val_images = 1
  result = train_and_evaluate(config, str(tmp_path))
  assert len(result["losses"]) == 3 and all(np.isfinite(l) for _, l in result["losses"])
  assert np.isfinite(result["psnr"])
  trained, name, kwargs = load_weights(tmp_path / "weights.msgpack")
  assert name == "n3net" and kwargs["num_stages"] == 2
  before = get_model("n3net", **tiny, seed=config.seed)
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                         nnx.state(trained, nnx.Param), nnx.state(before, nnx.Param))
  assert any(jax.tree.leaves(changed))

"""IKC: PCA kernel codes against the released pca_matrix's values, the synthesised batches, the
Corrector's sequential updates, and the iterative-correction evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from sfm_jax import ops
from sfm_jax.evaluation.ikc import evaluate_ikc
from sfm_jax.inference import make_apply
from sfm_jax.models import get_model
from sfm_jax.models.ikc import iterative_correction
from sfm_jax.ops import gaussian_codes
from sfm_jax.tasks.ikc import IKCTask
from sfm_jax.train.setup import make_train_step
from sfm_jax.weights import save_weights

# Codes computed from IKC's released pca_matrix.pth (441 × 10), shipped in SFM's `SR/IKC`.
PCA_MATRIX_CODES = {
    2.6: [0.0156, 0.0442, 0.0542, 0.0427, 0.0324, 0.0255, 0.0187, 0.0130, 0.0108, 0.0091],
    0.2: [0.9918, -0.0558, 0.0894],
}


def test_kernel_pca_reproduces_the_released_codes():
  basis = ops.kernel_pca()
  assert basis.shape == (441, 10)
  np.testing.assert_allclose(basis.T @ basis, np.eye(10), atol=1e-5)
  np.testing.assert_allclose(basis.sum(axis=0), 0, atol=1e-4)
  for sigma, want in PCA_MATRIX_CODES.items():
    code = np.asarray(gaussian_codes([sigma]))[0]
    np.testing.assert_allclose(code[:len(want)], want, atol=0.005)


def nearest_sigma(code):
  grid = np.linspace(0.2, 4.0, 381)
  codes = np.asarray(gaussian_codes(grid))
  return grid[np.argmin(np.sum((codes - code) ** 2, axis=1))]


def test_sftmd_batch_code_describes_the_blur_of_its_lr():
  task = IKCTask(stage="sftmd", scale=2)
  hr = jax.random.uniform(jax.random.key(0), (3, 32, 32, 3))
  batch = task.synthesize(jax.random.key(1), hr, jnp.int32(0))
  assert batch["lr"].shape == (3, 16, 16, 3) and batch["code"].shape == (3, 10)
  sigmas = [nearest_sigma(np.asarray(c)) for c in batch["code"]]
  assert len(set(sigmas)) == 3  # one kernel per image
  for image, lr, sigma in zip(hr, batch["lr"], sigmas, strict=True):
    want = ops.imresize(ops.blur(image[None], ops.gaussian_kernel(21, sigma)), scale=0.5)[0]
    np.testing.assert_allclose(lr, want, atol=2e-3)  # σ found on a 0.01 grid


def tiny(name, **kwargs):
  kwargs = {"channels": 3, "nf": 8, **kwargs}
  return get_model(name, seed=len(name), **kwargs), kwargs


@pytest.fixture
def frozen_files(tmp_path):
  paths = {}
  for name, extra in (("sftmd", {"scale": 2, "blocks": 1}), ("ikc_predictor", {})):
    model, kwargs = tiny(name, **extra)
    paths[name] = str(tmp_path / f"{name}.msgpack")
    save_weights(paths[name], model, name, kwargs)
  return paths


@pytest.mark.slow
def test_corrector_step_is_sequential_adam_updates_on_refined_codes(frozen_files):
  """One training step = `corrector_steps` Adam updates; update k sees the code corrected by
  the Corrector of update k − 1 (IKC's train loop), reproduced here with plain optax."""
  task = IKCTask(stage="corrector", scale=2, corrector_steps=3,
                 sftmd_weights=frozen_files["sftmd"],
                 predictor_weights=frozen_files["ikc_predictor"])
  corrector, _ = tiny("ikc_corrector")
  model_def, params = nnx.split(corrector)
  tx = optax.adam(1e-3)
  optimizer = nnx.Optimizer(corrector, tx, wrt=nnx.Param)
  optimizer_def, optimizer_state = nnx.split(optimizer)
  frozen_def, frozen_state = nnx.split(task.frozen_networks())
  step = make_train_step({"model": (model_def, optimizer_def)}, frozen_def, task, 0.0, seed=5)
  patches = jax.random.randint(jax.random.key(2), (2, 16, 16, 3), 0, 256).astype(jnp.uint8)
  state = {"model": params, "optimizer": optimizer_state, "ema": None}
  new_state, metrics = jax.jit(step)(state, patches, jnp.int32(4),
                                     {"networks": frozen_state, "constants": {}})

  # The reference: the same batch, three optax updates on a pure parameter tree.
  sftmd, predictor = (task.frozen_networks()[k] for k in ("sftmd", "predictor"))
  batch = IKCTask(stage="sftmd", scale=2).synthesize(
      jax.random.fold_in(jax.random.key(5), 4), patches.astype(jnp.float32) / 255, 4)
  estimate = predictor(batch["lr"])
  weights = nnx.to_pure_dict(params)
  opt_state = tx.init(weights)
  losses = []

  def loss_fn(weights, estimate):
    state = jax.tree.map(lambda x: x, params)
    nnx.replace_by_pure_dict(state, weights)
    out = nnx.merge(model_def, state)(sftmd(batch["lr"], estimate), estimate)
    return jnp.mean((out - batch["code"]) ** 2), out

  for _ in range(3):
    (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(weights, estimate)
    updates, opt_state = tx.update(grads, opt_state, weights)
    weights = optax.apply_updates(weights, updates)
    estimate, losses = out, [*losses, loss]
  np.testing.assert_allclose(metrics["loss"], np.mean(losses), rtol=1e-4)
  got = nnx.to_pure_dict(new_state["model"])
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(weights), strict=True):
    np.testing.assert_allclose(a, b, atol=1e-6)
  assert int(new_state["optimizer"]["step"][...]) == 3


def test_ikc_evaluation_scores_every_correction(frozen_files):
  sftmd, predictor = (make_apply(m) for m in IKCTask(
      stage="corrector", scale=2, sftmd_weights=frozen_files["sftmd"],
      predictor_weights=frozen_files["ikc_predictor"]).frozen_networks().values())
  corrector = make_apply(tiny("ikc_corrector")[0])
  image = (np.random.default_rng(0).random((26, 22, 3)) * 255).astype(np.uint8)
  codes = lambda sigma: gaussian_codes([sigma])  # noqa: E731
  [row] = evaluate_ikc(sftmd, predictor, corrector, codes, [("a", image)], 2, blur_sigma=2.0,
                       corrections=2)
  hr = image[:26, :22].astype(np.float32) / 255
  lr = jnp.asarray(ops.imresize(ops.blur(hr[None], ops.gaussian_kernel(21, 2.0)), scale=0.5))
  lr = jnp.round(jnp.clip(lr, 0, 1) * 255) / 255
  steps = iterative_correction(sftmd, predictor, corrector, lr, 2)
  assert len(steps) == 3
  y = lambda x: np.asarray(ops.rgb_to_y(jnp.round(jnp.clip(x, 0, 1) * 255) / 255),  # noqa: E731
                           np.float64)[2:-2, 2:-2] * 255
  psnrs = [10 * np.log10(255**2 / np.mean((y(sr[0]) - y(hr)) ** 2)) for sr, _ in steps]
  np.testing.assert_allclose([row["psnr_predicted"], row["psnr"], row["psnr_best"]],
                             [psnrs[0], psnrs[-1], max(psnrs)], atol=1e-3)
  assert row["best_step"] == int(np.argmax(psnrs))
  true = sftmd(lr, codes(2.0))[0]
  np.testing.assert_allclose(row["psnr_true_kernel"],
                             10 * np.log10(255**2 / np.mean((y(true) - y(hr)) ** 2)), atol=1e-3)


def test_later_stages_name_the_weights_they_need():
  with pytest.raises(ValueError, match="task.sftmd_weights"):
    IKCTask(stage="predictor")
  with pytest.raises(ValueError, match="task.predictor_weights"):
    IKCTask(stage="corrector", sftmd_weights="s.msgpack")
  with pytest.raises(ValueError, match="blurred LR"):
    IKCTask(blur_sigma_range=(0.0, 0.0))

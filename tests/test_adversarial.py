"""Two-network training through the one loop: ESRGAN, NatSR and FCA configs run a few CPU steps,
train both (all) networks, checkpoint every network and optimiser, and resume exactly; the NMD
learns to tell clean from inject_dct patches; RaGAN matches its formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image
from test_train import TINY, flat, load_config

from sfm_jax.models import get_model
from sfm_jax.tasks.adversarial import naturalness_loss, ragan_losses
from sfm_jax.train.checkpoints import Checkpoints
from sfm_jax.train.loop import train_and_evaluate
from sfm_jax.train.setup import build_model, build_task, initial_state, to_pure
from sfm_jax.weights import load_weights, save_weights

CRITICS = {"vgg_discriminator": {"nf": 8}, "natsr_discriminator": {"nf": 4},
           "fca_fdc": {"nf": 8}, "fca_wavelet_d": {"nf": 8}}
# natsr_x4 and fca (one config per task kind) run in the default suite; esrgan_x4, whose task
# kind natsr_x4 covers, with the slow tests.
GAN_CONFIGS = [pytest.param("esrgan_x4", marks=pytest.mark.slow), "natsr_x4", "fca"]


def save_random(folder, name, **kwargs):
  """A weights file of an untrained `name` (the frozen VGG19 / NMD of a test)."""
  path = folder / f"{name}.msgpack"
  save_weights(path, get_model(name, seed=3, **kwargs), name, kwargs)
  return str(path)


def tiny_gan_config(name, folder, workdir, steps=2):
  config = load_config(name)
  config.data.source = config.data.val_source = str(folder)
  config.data.scales, config.data.aug_copies = (1.0,), 0
  config.data.patch_size = config.data.stride = {"esrgan_x4": 128, "fca": 512}.get(name, 64)
  config.model.kwargs.update(TINY.get(config.model.name, {}))
  for critic in config.critics.values():
    critic.model.kwargs.update(CRITICS[critic.model.name])
  if config.task.get("vgg_weights") == "":
    config.task.vgg_weights = save_random(workdir, "vgg19_features")
  if config.task.get("nmd_weights") == "":
    config.task.nmd_weights = save_random(workdir, "nmd", channels=3, nf=4)
  if "switch_step" in config.task:
    config.task.switch_step = 2  # both curriculum scales within the three steps
  config.train.steps, config.train.batch_size, config.train.log_every = steps, 2, 1
  config.train.require_improvement = False  # a few steps need not beat bicubic
  config.train.eval_every, config.train.checkpoint_every = 10_000, 1
  config.eval.max_val_images = 1
  return config


def critic_params(setup):
  """{critic name: its parameters, flattened} of an `initial_state`."""
  return {name: flat(nnx.state(nnx.merge(setup.defs[name][0], s["model"]), nnx.Param))
          for name, s in setup.state["critics"].items()}


@pytest.mark.parametrize("name", GAN_CONFIGS)
def test_adversarial_config_trains_every_network(name, photo_folder, large_folder, tmp_path):
  folder = large_folder if name == "fca" else photo_folder
  straight = tiny_gan_config(name, folder, tmp_path, steps=3)
  setup = initial_state(straight, build_task(straight))
  before_model = flat(nnx.state(setup.model, nnx.Param))
  before_critics = critic_params(setup)
  result = train_and_evaluate(straight, str(tmp_path / "a"))
  assert all(np.isfinite(loss) for _, loss in result["losses"])

  trained, _, _ = load_weights(tmp_path / "a" / "weights.msgpack")
  assert not np.allclose(flat(nnx.state(trained, nnx.Param)), before_model)
  for critic, before in before_critics.items():
    network, _, _ = load_weights(tmp_path / "a" / f"{critic}.msgpack")
    assert not np.allclose(flat(nnx.state(network, nnx.Param)), before), critic

  # The checkpoint holds every network and every optimiser state.
  checkpoints = Checkpoints(tmp_path / "a")
  saved = checkpoints.restore(3, to_pure(setup.state))
  checkpoints.close()
  assert set(saved["critics"]) == set(before_critics)
  for critic in before_critics:
    assert int(saved["critics"][critic]["optimizer"]["step"]) == 3
    network, _, _ = load_weights(tmp_path / "a" / f"{critic}.msgpack")
    np.testing.assert_array_equal(flat(saved["critics"][critic]["model"]),
                                  flat(nnx.to_pure_dict(nnx.state(network))))
  assert int(saved["optimizer"]["step"]) == 3


@pytest.mark.slow
@pytest.mark.parametrize("name", ["natsr_x4", "fca"])
def test_adversarial_resume_equals_uninterrupted(name, photo_folder, large_folder, tmp_path):
  """Killed after step 2, resumed to 3: the same networks as the uninterrupted run."""
  folder = large_folder if name == "fca" else photo_folder
  result = train_and_evaluate(tiny_gan_config(name, folder, tmp_path, steps=3),
                              str(tmp_path / "a"))
  before_critics = tiny_gan_config(name, folder, tmp_path).critics
  train_and_evaluate(tiny_gan_config(name, folder, tmp_path, steps=2), str(tmp_path / "b"))
  resumed = train_and_evaluate(tiny_gan_config(name, folder, tmp_path, steps=3),
                               str(tmp_path / "b"))
  np.testing.assert_allclose([l for _, l in resumed["losses"]], [result["losses"][2][1]],
                             rtol=1e-5)
  for file in ["weights", *before_critics]:
    a, _, _ = load_weights(tmp_path / "a" / f"{file}.msgpack")
    b, _, _ = load_weights(tmp_path / "b" / f"{file}.msgpack")
    np.testing.assert_allclose(flat(nnx.state(b)), flat(nnx.state(a)), atol=1e-5)


def test_perceptual_loss_without_vgg_weights_is_a_clear_error(photo_folder, tmp_path):
  config = load_config("esrgan_x4")
  with pytest.raises(ValueError, match="--arch vgg19"):
    build_task(config)
  config.task.perceptual_weight = 0.0
  assert build_task(config).perceptual_weight == 0.0
  with pytest.raises(ValueError, match="configs/nmd.py"):
    build_task(load_config("natsr_x4"))


def test_ragan_losses_match_the_formula():
  rng = np.random.default_rng(0)
  r, f = rng.normal(size=5), rng.normal(size=5)

  def bce(logits, label):
    p = 1 / (1 + np.exp(-logits))
    return -np.mean(label * np.log(p) + (1 - label) * np.log(1 - p))

  d_expected = bce(r - f.mean(), 1) + bce(f - r.mean(), 0)
  g_expected = bce(f - r.mean(), 1) + bce(r - f.mean(), 0)
  d, g = ragan_losses(jnp.asarray(r), jnp.asarray(f))
  np.testing.assert_allclose([d, g], [d_expected, g_expected], rtol=1e-5)
  d_half, g_half = ragan_losses(jnp.asarray(r), jnp.asarray(f), "mean")
  np.testing.assert_allclose([d_half, g_half], [d_expected / 2, g_expected / 2], rtol=1e-5)
  np.testing.assert_allclose(naturalness_loss(jnp.asarray(r)),
                             -np.mean(np.log(1 / (1 + np.exp(-r)) + 1e-10)), rtol=1e-5)


def test_nmd_config_trains_a_few_steps_and_checkpoints_its_curriculum(photo_folder, tmp_path):
  """configs/nmd.py through train.py's loop, tiny: the NMD moves, the curriculum state (σ, α and
  the accuracy windows) is in the checkpoint, and validation reports both accuracies."""
  config = load_config("nmd")
  config.data.source = config.data.val_source = str(photo_folder)
  config.data.patch_size, config.data.stride = 32, 32
  config.model.kwargs.nf = 4
  config.task.curriculum_patches, config.task.curriculum_every = 4, 1
  config.train.steps, config.train.batch_size, config.train.log_every = 2, 8, 1
  config.train.eval_every, config.train.checkpoint_every = 10_000, 2
  before = flat(nnx.state(build_model(config), nnx.Param))
  result = train_and_evaluate(config, str(tmp_path))
  assert all(np.isfinite(loss) for _, loss in result["losses"])
  assert 0.0 <= result["accuracy_noisy"] <= 100.0 and 0.0 <= result["accuracy_blurry"] <= 100.0
  trained, _, _ = load_weights(tmp_path / "weights.msgpack")
  assert not np.allclose(flat(nnx.state(trained, nnx.Param)), before)
  template = initial_state(config, build_task(config)).state
  checkpoints = Checkpoints(tmp_path)
  saved = checkpoints.restore(2, to_pure(template))
  checkpoints.close()
  assert set(saved["task"]) == {"sigma", "alpha", "noisy_window", "blurry_window"}
  # Two evaluations entered the 10-wide windows of zeros, too few to move σ or α.
  assert np.all(np.asarray(saved["task"]["noisy_window"])[:-2] == 0)
  assert float(saved["task"]["sigma"]) == pytest.approx(0.1)
  assert float(saved["task"]["alpha"]) == pytest.approx(0.5)


@pytest.mark.slow
def test_short_nmd_training_separates_clean_from_inject_dct(tmp_path):
  """A small NMD (nf=8), 32×32 patches, 600 CPU steps at the paper's Adam 1e-4: held-out
  accuracy of clean vs inject_dct σ = 0.1 patches ≥ 90%. The curriculum is
  checked every 100 steps, so its 10-wide window cannot lower σ within the run."""
  from skimage import data

  train_folder, val_folder = tmp_path / "train", tmp_path / "val"
  train_folder.mkdir(), val_folder.mkdir()
  for name in ("chelsea", "coffee", "rocket"):
    Image.fromarray(getattr(data, name)()).save(train_folder / f"{name}.png")
  Image.fromarray(data.astronaut()).save(val_folder / "astronaut.png")
  config = load_config("nmd")
  config.data.source, config.data.val_source = str(train_folder), str(val_folder)
  config.data.patch_size, config.data.stride = 32, 24
  config.model.kwargs.nf = 8
  config.task.curriculum_patches = 32
  config.train.batch_size, config.train.steps = 16, 600
  config.train.log_every, config.train.eval_every = 100, 10_000
  config.train.checkpoint_every = 600
  result = train_and_evaluate(config, str(tmp_path / "nmd"))
  assert result["accuracy_noisy"] >= 90.0, result["summary"]
  assert result["sigma"] == pytest.approx(0.1) and result["alpha"] == pytest.approx(0.5)


class NoiseOracle(nnx.Module):
  """Logit +10 for patches without energy in the last DCT row/column of their 8×8 blocks (flat
  patches), −10 otherwise: a perfect noisy-vs-clean classifier on flat patches."""

  def __init__(self, *, rngs=None):
    self.unused = nnx.Param(jnp.zeros(()))

  def __call__(self, x):
    from sfm_jax import ops

    coeffs = ops.block_dct2(x)
    edge = jnp.abs(coeffs[:, 7::8]).mean(axis=(1, 2, 3)) + jnp.abs(coeffs[:, :, 7::8]).mean(
        axis=(1, 2, 3))
    return jnp.where(edge > 1e-4, -10.0, 10.0) + 0 * self.unused[...]


@pytest.mark.parametrize("alpha_rule", ["at_least", "equal"])
def test_nmd_curriculum_lowers_sigma_once_the_window_is_full(alpha_rule):
  """Every `curriculum_every` steps one held-out evaluation enters a window of 10 (initially
  zeros): σ ×0.8 once the window's mean reaches 95%, again at each later evaluation (the window is
  not reset); the blurry class of flat patches is indistinguishable (50%), so α stays."""
  from sfm_jax.tasks.nmd import NMDTask

  task = NMDTask(curriculum_every=3, alpha_rule=alpha_rule)
  patches = jnp.full((8, 16, 16, 3), 0.5)
  state = jax.tree.map(jnp.asarray, task.initial_state())
  bound = task.bind({}, {"patches": patches}, state)
  networks = {"model": NoiseOracle()}
  advance = jax.jit(lambda state, step: bound.advance(state, networks, step))
  sigmas = []
  for step in range(36):
    state, metrics = advance(state, jnp.int32(step))
    sigmas.append(float(metrics["sigma"]))
  evaluations = [s for step, s in enumerate(sigmas) if (step + 1) % 3 == 0]
  np.testing.assert_allclose(evaluations, [0.1] * 9 + [0.08, 0.064, 0.0512], rtol=1e-6)
  assert float(state["alpha"]) == 0.5
  np.testing.assert_allclose(state["blurry_window"], 50.0)


def test_eval_writes_fca_pairs_and_the_frequency_density_plot(large_folder, tmp_path):
  """eval.py --task fca: LR = G(HR) as uint8 for every image, a PNG plot, finite gaps."""
  import json
  import subprocess
  import sys

  from test_train import ROOT

  weights = tmp_path / "g.msgpack"
  generator = get_model("fca_generator", seed=1, channels=3, nf=8)
  save_weights(weights, generator, "fca_generator", {"channels": 3, "nf": 8})
  out = tmp_path / "pairs"
  done = subprocess.run([sys.executable, "eval.py", "--task", "fca", "--weights", str(weights),
                         "--dataset", str(large_folder), "--output", str(out)],
                        cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "2 adapted LR/HR pairs" in done.stdout
  generator.eval()
  for name in ("astronaut", "camera"):
    hr = np.asarray(Image.open(out / "HR" / f"{name}.png"), np.float32) / 255
    lr = np.asarray(Image.open(out / "LR" / f"{name}.png"), np.float32)
    assert hr.shape == (512, 512, 3) and lr.shape == (128, 128, 3)
    expected = np.round(np.clip(np.asarray(generator(jnp.asarray(hr)[None]))[0], 0, 1) * 255)
    assert np.mean(np.abs(lr - expected)) < 0.05
  assert Image.open(out / "frequency_density.png").size[0] > 100
  summary = json.loads((out / "summary.json").read_text())
  assert np.isfinite(summary["fd_gap_adapted"]) and summary["fd_gap_bicubic"] > 0

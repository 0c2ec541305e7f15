"""apply_sfm / apply_masks against a per-image numpy loop with the authors' transform."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.fftpack import dct, idct

from sfm_jax import ops


def authors_transform(img_hwc, mask):
  """utils_SFM.random_drop's transform for one image, channel by channel (scipy.fftpack)."""
  out = np.empty_like(img_hwc, dtype=np.float64)
  for c in range(img_hwc.shape[-1]):
    coeffs = dct(dct(img_hwc[:, :, c], axis=0, norm="ortho"), axis=1, norm="ortho")
    out[:, :, c] = idct(idct(coeffs * mask, axis=0, norm="ortho"), axis=1, norm="ortho")
  return out


@pytest.mark.parametrize("unselected", ["keep", "zero"])
@pytest.mark.parametrize("mode", ["random", "central", "targeted"])
def test_apply_sfm_matches_per_image_loop(rng, mode, unselected):
  images = rng.random((12, 16, 20, 3), dtype=np.float32)
  out, masks = ops.apply_sfm(jax.random.key(5), jnp.asarray(images), rate=0.5, mode=mode,
                             radius_perc=0.5, sigma_perc=0.15, unselected=unselected)
  assert out.shape == images.shape and masks.shape == (12, 16, 20)
  masks = np.asarray(masks)
  for b in range(len(images)):
    np.testing.assert_allclose(out[b], authors_transform(images[b], masks[b]), atol=1e-5)
  flat = masks.reshape(12, -1)
  if unselected == "zero":  # zeroed images, as the released training scripts make them
    np.testing.assert_array_equal(np.asarray(out)[flat.max(axis=1) == 0], 0.0)
  else:  # untouched images
    untouched = flat.min(axis=1) == 1
    np.testing.assert_allclose(np.asarray(out)[untouched], images[untouched], atol=1e-6)


def test_same_masks_apply_to_the_noise(rng):
  images = jnp.asarray(rng.random((8, 32, 32, 1), dtype=np.float32))
  noise = jnp.asarray(rng.normal(size=(8, 32, 32, 1)).astype(np.float32))
  for unselected in ("keep", "zero"):
    _, masks = ops.apply_sfm(jax.random.key(1), images, rate=0.5, unselected=unselected)
    got = ops.apply_masks(noise, masks)
    for b in range(8):
      want = authors_transform(np.asarray(noise[b]), np.asarray(masks[b]))
      np.testing.assert_allclose(got[b], want, atol=1e-5)


def test_masked_gaussian_noise_is_white_noise_through_the_masks():
  images = jnp.zeros((64, 32, 32, 1), jnp.float32)
  _, masks = ops.apply_sfm(jax.random.key(4), images, rate=0.5, mode="central")
  sigmas = jnp.linspace(5.0, 50.0, 64)
  noise = ops.masked_gaussian_noise(jax.random.key(5), masks, sigmas, channels=2)
  assert noise.shape == (64, 32, 32, 2)
  coeffs = np.asarray(ops.dct2(noise))
  kept = np.broadcast_to(np.asarray(masks)[..., None] == 1, coeffs.shape)
  assert np.abs(coeffs[~kept]).max() < 1e-6  # nothing outside the masks
  scaled = coeffs / (np.asarray(sigmas)[:, None, None, None] / 255)
  assert abs(scaled[kept].std() - 1) < 0.01  # unit variance inside, after removing sigma
  # Same law as masking pixel-domain noise: compare per-image energies.
  reference = ops.apply_masks(ops.gaussian_noise(jax.random.key(6), noise.shape, sigmas), masks)
  ratio = np.sum(np.asarray(noise) ** 2) / np.sum(np.asarray(reference) ** 2)
  assert abs(ratio - 1) < 0.02


def test_selection_is_bernoulli_rate_per_image():
  images = jnp.ones((4000, 8, 8, 1), jnp.float32)
  for rate in (0.0, 0.3, 1.0):
    _, masks = ops.apply_sfm(jax.random.key(2), images, rate=rate, unselected="zero")
    selected = np.asarray(masks).reshape(4000, -1).max(axis=1) > 0
    assert abs(selected.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / 4000) + 1e-9


def test_one_mask_shared_by_all_channels(rng):
  image = rng.random((1, 16, 16, 1), dtype=np.float32)
  stacked = jnp.asarray(np.concatenate([image, 2 * image, -image], axis=-1))
  out, _ = ops.apply_sfm(jax.random.key(0), stacked, rate=1.0)
  np.testing.assert_allclose(out[..., 1], 2 * out[..., 0], atol=1e-5)
  np.testing.assert_allclose(out[..., 2], -out[..., 0], atol=1e-5)


def test_apply_sfm_jit_vmap_and_determinism(rng):
  images = jnp.asarray(rng.random((3, 4, 16, 16, 1), dtype=np.float32))
  keys = jax.random.split(jax.random.key(0), 3)

  def step(key, x):
    out, masks = ops.apply_sfm(key, x, rate=0.5, mode="targeted")
    return out, masks

  vm_out, vm_masks = jax.jit(jax.vmap(step))(keys, images)
  for k in range(3):
    out, masks = ops.apply_sfm(keys[k], images[k], rate=0.5, mode="targeted")
    np.testing.assert_allclose(vm_out[k], out, atol=1e-6)
    np.testing.assert_array_equal(vm_masks[k], masks)


def test_rate_may_be_traced(rng):
  images = jnp.asarray(rng.random((64, 8, 8, 1), dtype=np.float32))
  f = jax.jit(lambda r: ops.apply_sfm(jax.random.key(0), images, rate=r, unselected="zero")[1])
  assert float(f(0.0).max()) == 0.0
  assert float(f(1.0).reshape(64, -1).max(axis=1).min()) == 1.0


@pytest.mark.parametrize("images, kwargs, message", [
    (np.zeros((2, 8, 8, 1), np.float32), dict(rate=1.5), r"rate=1.5 is outside \[0, 1\]"),
    (np.zeros((2, 8, 8, 1), np.float32), dict(rate=-0.1), r"rate=-0.1 is outside"),
    (np.zeros((2, 8, 8, 1), np.float32), dict(radius_perc=1.5), "radius_perc=1.5 is outside"),
    (np.zeros((2, 8, 8, 1), np.float32), dict(mode="wedge"), "unknown SFM mode"),
    (np.zeros((2, 8, 8, 1), np.float32), dict(unselected="drop"), "use 'keep'"),
    (np.zeros((2, 2, 8, 8, 1), np.float32), {}, "expected a batch"),
    (np.zeros((2, 8, 8, 1), np.uint8), {}, "astype"),
    (np.zeros((8, 8, 1), np.float32), {}, r"one \(H, W, C\) image.*batch axis.*images\[None\]"),
    (np.zeros((2, 3, 32, 40), np.float32), {}, r"looks like \(B, C, H, W\).*transpose"),
    (np.full((2, 8, 8, 1), 200.0, np.float32), {}, r"values up to 200.*images / 255"),
    (np.zeros((2, 0, 8, 1), np.float32), {}, "an empty image"),
])
def test_bad_arguments_raise_value_error_naming_the_fix(images, kwargs, message):
  with pytest.raises(ValueError, match=message):
    ops.apply_sfm(jax.random.key(0), jnp.asarray(images), **kwargs)


def test_apply_masks_rejects_masks_of_another_batch():
  with pytest.raises(ValueError, match="use the masks returned by apply_sfm"):
    ops.apply_masks(jnp.zeros((2, 8, 8, 1)), jnp.ones((3, 8, 8)))


def test_a_non_finite_noise_level_is_refused(rng):
  images = jnp.asarray(rng.random((2, 8, 8, 1), dtype=np.float32))
  for sigma in (float("nan"), float("inf")):
    with pytest.raises(ValueError, match="not a finite number"):
      ops.add_awgn(jax.random.key(0), images, sigma)

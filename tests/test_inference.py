"""Tiled inference and the ×8 self-ensemble against whole-image references."""

import jax.numpy as jnp
import numpy as np

from sfm_jax.inference import make_apply, restore_image
from sfm_jax.models import get_model


def tiny_dncnn():
  return get_model("dncnn", num_layers=3, features=8, seed=1)  # receptive radius 3


def test_tiled_inference_equals_whole_image_when_overlap_covers_the_receptive_field():
  denoise = make_apply(tiny_dncnn())
  img = np.random.default_rng(0).random((45, 37, 1)).astype(np.float32)
  whole = restore_image(denoise, img, 0.1)
  tiled = restore_image(denoise, img, 0.1, tile=16, tile_overlap=4)
  np.testing.assert_allclose(tiled, whole, atol=1e-5)
  assert not np.allclose(restore_image(denoise, img, 0.1, tile=16, tile_overlap=0), whole,
                         atol=1e-5)  # without context the tile borders differ


def test_self_ensemble_is_the_mean_of_the_eight_dihedral_passes(dihedral_mean):
  denoise = make_apply(tiny_dncnn())
  img = np.random.default_rng(1).random((12, 20, 1)).astype(np.float32)
  plain = lambda a: np.asarray(denoise(jnp.asarray(a)[None], jnp.array([0.1])))[0]  # noqa: E731
  np.testing.assert_allclose(restore_image(denoise, img, 0.1, self_ensemble=True),
                             dihedral_mean(plain, img), atol=1e-5)


def test_odd_sizes_are_padded_for_models_that_need_a_multiple():
  unet = make_apply(get_model("unet", features=4))
  img = np.random.default_rng(2).random((37, 50, 1)).astype(np.float32)
  assert restore_image(unet, img, 0.1, multiple=32).shape == (37, 50, 1)

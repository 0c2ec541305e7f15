"""Model cards: the receptive field on each card bounds what the network really sees (measured by
the gradient of one output pixel), weights files carry the card, and a user's model registers
itself in its own file."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sfm_jax.models import REGISTRY, get_model, model_card, register
from sfm_jax.weights import load_model, read_stored, save_weights


def measured_radius(model, card, size: int) -> int:
  """The largest distance (in input pixels) from the centre of a pixel that the centre output
  pixel's gradient reaches, over two centres (pooling grids) and two random inputs."""
  model.eval()
  radius = 0
  for centre in (size // 2, size // 2 + 1):
    def pixel(x, centre=centre):
      args = (jnp.full((1,), 0.1),) if card.takes_noise_level else ()
      return model(x, *args)[0, centre * card.scale, centre * card.scale].sum()

    for seed in (0, 1):
      x = jax.random.uniform(jax.random.key(seed), (1, size, size, card.channels))
      reach = np.nonzero(np.abs(np.asarray(jax.grad(pixel)(x)))[0].sum(-1))
      radius = max(radius, *(int(np.max(np.abs(r - centre))) for r in reach))
  return radius


SMALL = {  # (constructor arguments, probe size): the formulas' terms, at sizes a CPU probes fast
    "dncnn": ({"num_layers": 5, "features": 8}, 24),
    "ffdnet": ({"num_layers": 4, "features": 8}, 32),
    "dct_denoiser": ({}, 24),
    "memnet": ({"num_memblock": 2, "num_resblock": 2, "features": 8}, 32),
    "rrdb": ({"nb": 2, "nf": 8, "gc": 4, "scale": 2}, 80),
    "rdn": ({"g0": 8, "g": 8, "blocks": 2, "layers": 3, "scale": 3, "channels": 1}, 40),
    "kmsr": ({"nf": 8, "blocks": 3, "channels": 1}, 24),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_card_receptive_field_is_what_the_network_sees(name):
  kwargs, size = SMALL[name]
  card = model_card(name, kwargs)
  assert card.receptive_field < size // 2 - 1  # the probe image is large enough to tell
  assert measured_radius(get_model(name, **kwargs), card, size) == card.receptive_field


def test_every_registered_model_has_a_complete_card():
  for name in REGISTRY:
    card = model_card(name)
    assert card.channels in (1, 3) and card.scale >= 1 and card.size_multiple >= 1
    if card.role in ("denoiser", "super_resolver"):
      assert card.protocol and card.receptive_field > 0, name


def test_weights_files_carry_the_card(tmp_path):
  model = get_model("dncnn", num_layers=3, features=4)
  save_weights(tmp_path / "w.msgpack", model, "dncnn", {"num_layers": 3, "features": 4,
                                                         "channels": 1})
  stored = read_stored(tmp_path / "w.msgpack")
  assert stored.card == model_card("dncnn", {"num_layers": 3, "features": 4})
  assert stored.card.receptive_field == 3 and stored.card.protocol == "denoise"


@register("test_user_denoiser", role="denoiser", protocol="denoise",
          receptive_field=lambda a: a["depth"])
class UserDenoiser(nnx.Module):
  """A user's model: one file, one registration."""

  def __init__(self, channels: int = 1, depth: int = 2, *, rngs: nnx.Rngs):
    self.convs = nnx.List([nnx.Conv(channels, channels, (3, 3), rngs=rngs)
                           for _ in range(depth)])

  def __call__(self, x, noise_level=None):
    for conv in self.convs:
      x = conv(x)
    return x


def test_a_user_model_trains_into_a_weights_file_that_rebuilds_it(tmp_path):
  model = get_model("test_user_denoiser", depth=3)
  save_weights(tmp_path / "u.msgpack", model, "test_user_denoiser", {"channels": 1, "depth": 3})
  # As in a fresh process: neither the registration nor the module is there; the file names it.
  del REGISTRY["test_user_denoiser"]
  del sys.modules[__name__]
  loaded, card, _ = load_model(tmp_path / "u.msgpack")
  assert "test_user_denoiser" in REGISTRY and __name__ in sys.modules
  assert card.module == __name__ and card.receptive_field == 3
  x = jnp.ones((1, 8, 8, 1))
  np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


def test_an_unknown_model_names_the_known_ones():
  with pytest.raises(ValueError, match="unknown model 'dncnm'.*dncnn"):
    get_model("dncnm")


def test_a_users_modules_import_from_the_config_folder_and_the_current_one(tmp_path,
                                                                           monkeypatch):
  from sfm_jax import cli

  (tmp_path / "configs").mkdir()
  (tmp_path / "configs" / "my_models_for_test.py").write_text("NAME = 'mine'\n")
  (tmp_path / "here").mkdir()
  monkeypatch.chdir(tmp_path / "here")
  monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
  cli.find_user_modules(["train.py", "--config", "../configs/c.py:variant", "--workdir", "w"])
  assert sys.path[-2:] == [str(tmp_path / "here"), str(tmp_path / "configs")]
  assert __import__("my_models_for_test").NAME == "mine"

"""Shared test fixtures. Tests run on CPU with small arrays; `../shared` data is optional."""

import pathlib

import jax
import numpy as np
import pytest

jax.config.update("jax_platforms", "cpu")

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def rng():
  return np.random.default_rng(0)


@pytest.fixture
def shared_data():
  """Path of ../shared/data (standard benchmark folders); skips when it is absent."""
  path = SHARED / "data"
  if not path.is_dir():
    pytest.skip(f"{path} not found: the benchmark image folders live beside the repository")
  return path


@pytest.fixture
def dihedral_mean():
  """f(fn, img (H, W, C)) -> the mean over the 8 rotations/flips of img of fn's output, each
  transformed back with numpy: the reference for ×8 self-ensembles."""
  def mean(fn, img):
    outs = []
    for k in range(4):
      for flip in (False, True):
        a = np.rot90(img, k)
        a = np.flipud(a) if flip else a
        y = fn(np.ascontiguousarray(a))
        y = np.flipud(y) if flip else y
        outs.append(np.rot90(y, -k))
    return np.mean(outs, axis=0)

  return mean

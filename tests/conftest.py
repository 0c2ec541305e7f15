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

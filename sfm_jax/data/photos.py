"""The one image reader of training, evaluation and restore, and restore's writer.

Every file becomes a `Photo`: float32 pixels in [0, 1] (gray or RGB), an alpha channel, the
bit depth (8 or 16) and the ICC profile, stood upright by its EXIF orientation. Every mode PIL
opens is read the same way in all three paths: 1 (0/255), L, LA, P (RGB, or RGBA where it has
transparency), RGB, RGBA, CMYK and YCbCr (to RGB; CMYK through its own ICC profile to sRGB when
it has one), I;16 and I (16-bit; values beyond 0–65535 are refused), F (float, in [0, 1]). PIL
reads 8-bit files and 16-bit gray ones; 16-bit colour PNGs go through pypng and TIFFs through
tifffile. Multi-page TIFFs and animated PNGs are refused by name (a phone's MPO JPEG gives its
primary picture). Images above the decompression-bomb limit (PIL's, ~179 MP, unless
`max_pixels` raises it) are refused with the figure to raise it to.

Restore writes PNG or TIFF at the input's bit depth (float inputs: 16-bit) with its ICC profile;
16-bit PNGs other than plain gray are written by pypng (PIL cannot write them).
"""

from __future__ import annotations

import dataclasses
import io
import pathlib
import threading
import zlib

import numpy as np

from sfm_jax.errors import DataError
from sfm_jax.weights import write_atomically

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SUFFIXES = (".tif", ".tiff")
_JPEG_SUFFIXES = (".jpg", ".jpeg")
_EXIF_ORIENTATION, _TIFF_ICC_TAG = 0x0112, 34675
# EXIF orientation -> how to stand the stored pixels upright (PIL's ImageOps.exif_transpose).
_UPRIGHT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.rot90(a, 1),
}
# PIL modes read as they are (np.asarray gives the stored values); others are converted.
_KEPT_MODES = ("L", "LA", "RGB", "RGBA", "I", "I;16", "I;16L", "I;16B", "F")
_SAME_SPACE = {"1": "L", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB"}  # ICC profile still applies
_OPEN_LOCK = threading.Lock()


@dataclasses.dataclass
class Photo:
  """pixels: float32 (H, W, 1|3) in [0, 1], the colour channels; alpha: (H, W) in [0, 1] or
  None; bit_depth: 8 or 16, the file's; icc_profile: the file's embedded profile (bytes) or
  None (sRGB)."""
  pixels: np.ndarray
  alpha: np.ndarray | None
  bit_depth: int
  icc_profile: bytes | None = None

  @property
  def mode(self) -> str:
    return ("L" if self.pixels.shape[-1] == 1 else "RGB") + ("A" if self.alpha is not None else "")


@dataclasses.dataclass
class _Stored:
  """A file's pixels as stored: (H, W[, C]) of any dtype, EXIF orientation, ICC profile."""
  array: np.ndarray
  orientation: int = 1
  icc_profile: bytes | None = None


def read_photo(path: str | pathlib.Path, max_pixels: int | None = None) -> Photo:
  """Reads an image file upright; DataError (one sentence naming the file and the fix) if it
  cannot. `max_pixels`: the decompression-bomb limit (None: PIL's; 0: none)."""
  path = pathlib.Path(path)
  try:
    stored = _read_stored(path, max_pixels)
  except DataError:
    raise
  except Exception as error:  # PIL, pypng and tifffile raise many types for damaged files
    reason = str(error).replace(str(path), path.name)[:80]
    raise DataError(f"cannot read {path} ({type(error).__name__}: {reason}); is it an image? "
                    "Remove or replace the file.") from None
  array = _UPRIGHT.get(stored.orientation, lambda a: a)(stored.array)
  return _split(np.ascontiguousarray(array), path, stored.icc_profile)


def pixel_values(array: np.ndarray, name: str) -> tuple[np.ndarray, int]:
  """Stored pixels of any dtype -> (float32 in [0, 1], bit depth 8 or 16): bool is 0/1, uint8
  /255, other integers /65535 (16-bit; 16-bit PNGs open as int32), float as it is (written
  back at 16 bits). DataError for a float outside [0, 1] or an integer beyond 16 bits, whose
  scale is unknown."""
  array = np.asarray(array)
  if array.dtype == bool or array.dtype == np.uint8:
    return array.astype(np.float32) / (1.0 if array.dtype == bool else 255.0), 8
  if np.issubdtype(array.dtype, np.integer):
    low, high = _value_range(array)
    if low < 0 or high > 65535:
      raise DataError(f"{name} holds integer pixels in [{low}, {high}]; use 8- or 16-bit "
                      "images (0–255 or 0–65535).")
    return array.astype(np.float32) / 65535.0, 16
  if np.issubdtype(array.dtype, np.floating):
    low, high = _value_range(array)
    if not -1e-3 <= low <= high <= 1 + 1e-3:  # False for NaN
      raise DataError(f"{name} holds float pixels in [{low:g}, {high:g}]; float images must "
                      "lie in [0, 1]: rescale it, or save it as an 8- or 16-bit PNG or TIFF.")
    return np.clip(array, 0, 1).astype(np.float32), 16
  raise DataError(f"{name} holds {array.dtype} pixels; use 8- or 16-bit PNG or TIFF.")


def _value_range(array: np.ndarray) -> tuple[float, float]:
  """(min, max) of the values; NaN where any is NaN, (0, 0) for an empty array."""
  if not array.size:
    return 0, 0
  return array.min().item(), array.max().item()


def _read_stored(path: pathlib.Path, max_pixels: int | None) -> _Stored:
  if path.suffix.lower() in _TIFF_SUFFIXES:
    stored = _read_tiff(path, max_pixels)
    if stored is not None:
      return stored
  return _read_pil(path, max_pixels)


def _read_tiff(path: pathlib.Path, max_pixels: int | None) -> _Stored | None:
  """A TIFF by tifffile (every bit depth), or None for photometric interpretations it leaves
  to PIL (CMYK, palette, Lab, ...)."""
  import tifffile

  with tifffile.TiffFile(path) as tif:
    if len(tif.pages) > 1:
      raise _pages_error(path, len(tif.pages))
    page = tif.pages[0]
    _check_size(path, (page.imagewidth, page.imagelength), max_pixels)
    kind = tifffile.PHOTOMETRIC
    if page.photometric not in (kind.MINISBLACK, kind.MINISWHITE, kind.RGB):
      return None
    array = page.asarray()
    if page.axes.startswith("S"):  # planar: one plane per sample
      array = np.moveaxis(array, 0, -1)
    if page.photometric == kind.MINISWHITE:
      array = _inverted(array)
    orientation, icc = page.tags.get("Orientation"), page.tags.get(_TIFF_ICC_TAG)
    return _Stored(array, int(orientation.value) if orientation else 1,
                   bytes(icc.value) if icc else None)


def _read_pil(path: pathlib.Path, max_pixels: int | None) -> _Stored:
  with _open_unchecked(path) as image:
    _check_size(path, image.size, max_pixels)
    if getattr(image, "n_frames", 1) > 1 and image.format != "MPO":
      raise _pages_error(path, image.n_frames)
    orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1))
    if _is_16bit_png(path):
      return _Stored(_read_png16(path), orientation, image.info.get("icc_profile"))
    image, icc = _supported(image, image.info.get("icc_profile"))
    return _Stored(np.asarray(image), orientation, icc)


def _open_unchecked(path: pathlib.Path):
  """PIL's Image.open without its own size check (read_photo checks against its limit): the
  header only, under a lock, as PIL's check is a module setting."""
  from PIL import Image

  with _OPEN_LOCK:
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
      return Image.open(path)
    finally:
      Image.MAX_IMAGE_PIXELS = saved


def _check_size(path: pathlib.Path, size: tuple[int, int], max_pixels: int | None):
  """DataError when width × height exceeds `max_pixels` (None: PIL's error limit, twice its
  MAX_IMAGE_PIXELS; 0 or PIL's None: no limit)."""
  from PIL import Image

  if max_pixels is None:
    max_pixels = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else 0
  pixels = size[0] * size[1]
  if max_pixels and pixels > max_pixels:
    raise DataError(f"{path} is {size[0]}×{size[1]} ({pixels / 1e6:.0f} MP), above the "
                    f"decompression-bomb limit of {max_pixels / 1e6:.0f} MP; if you trust the "
                    f"file, raise the limit (sfm-restore --max_image_pixels {pixels}) or split "
                    "it into smaller images.")


def _pages_error(path: pathlib.Path, pages: int) -> DataError:
  return DataError(f"{path} holds {pages} pages or frames, and only single images are read; "
                   "save each page as its own file (e.g. `magick in.tif page_%d.png`).")


def _supported(image, icc: bytes | None):
  """(the image in a mode np.asarray reads as stored values, its ICC profile where it still
  applies): CMYK through its profile to sRGB (PIL's plain conversion without one); palette
  to RGB(A); 1, La, RGBa, RGBX to L, LA, RGBA, RGB; any other mode to RGB(A), profile dropped."""
  mode = image.mode
  if mode in _KEPT_MODES:
    return image, icc
  if mode in _SAME_SPACE:
    return image.convert(_SAME_SPACE[mode]), icc
  if mode in ("P", "PA"):
    transparent = mode == "PA" or "transparency" in image.info
    return image.convert("RGBA" if transparent else "RGB"), icc
  if mode == "CMYK" and icc:
    from PIL import ImageCms

    try:
      source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
      return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"),
                                       outputMode="RGB"), None
    except (OSError, ImageCms.PyCMSError):  # a damaged profile: PIL's plain conversion
      pass
  return image.convert("RGBA" if "A" in image.getbands() else "RGB"), None


def _inverted(array: np.ndarray) -> np.ndarray:
  """A min-is-white image as min-is-black."""
  if array.dtype == bool:
    return ~array
  if np.issubdtype(array.dtype, np.integer):
    return np.iinfo(array.dtype).max - array
  return 1.0 - array


def _is_16bit_png(path: pathlib.Path) -> bool:
  with open(path, "rb") as f:
    head = f.read(26)
  return head[:8] == _PNG_SIGNATURE and head[24] == 16


def _read_png16(path: pathlib.Path) -> np.ndarray:
  import png

  width, height, rows, info = png.Reader(filename=str(path)).asDirect()
  planes = info["planes"]
  array = np.vstack([np.asarray(row, np.uint16) for row in rows])
  return array.reshape(height, width, planes)


def _split(array: np.ndarray, path: pathlib.Path, icc: bytes | None) -> Photo:
  """Stored pixels -> Photo; DataError for what cannot be read as an image."""
  values, depth = pixel_values(array, str(path))
  if values.ndim == 2:
    values = values[:, :, None]
  if values.ndim != 3 or values.shape[-1] not in (1, 2, 3, 4):
    raise DataError(f"{path} has shape {array.shape}; gray, gray+alpha, RGB and RGBA images "
                    "are read.")
  colour, alpha = (values[..., :-1], values[..., -1]) if values.shape[-1] in (2, 4) else (
      values, None)
  return Photo(colour, alpha, depth, icc)


def write_photo(path: str | pathlib.Path, photo: Photo, quality: int = 95) -> None:
  """Writes `photo` as PNG or TIFF (by suffix) at its bit depth with its ICC profile, or as an
  8-bit JPEG of `quality` (1–95; alpha is refused: JPEG cannot hold it), atomically (a reader
  sees no half-written file), creating the folder."""
  path = pathlib.Path(path)
  jpeg = path.suffix.lower() in _JPEG_SUFFIXES
  if jpeg and photo.alpha is not None:
    raise DataError(f"{path.name}: JPEG cannot hold the alpha channel; write PNG or TIFF.")
  path.parent.mkdir(parents=True, exist_ok=True)
  peak, dtype = (255, np.uint8) if photo.bit_depth == 8 or jpeg else (65535, np.uint16)
  planes = [photo.pixels] + ([photo.alpha[..., None]] if photo.alpha is not None else [])
  array = np.round(np.clip(np.concatenate(planes, axis=-1), 0, 1) * peak).astype(dtype)
  write_atomically(path, _encode(array, path.suffix.lower(), photo.icc_profile, quality))


def _encode(array: np.ndarray, suffix: str, icc: bytes | None = None,
            quality: int = 95) -> bytes:
  """(H, W, 1..4) uint8/uint16 -> the bytes of a PNG, of a TIFF for .tif/.tiff, or of a JPEG
  (uint8 (H, W, 1|3)) for .jpg/.jpeg."""
  buffer = io.BytesIO()
  if suffix in _JPEG_SUFFIXES:
    from PIL import Image

    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(
        buffer, format="JPEG", quality=quality, **({"icc_profile": icc} if icc else {}))
  elif suffix in _TIFF_SUFFIXES:
    import tifffile

    extra = {"extrasamples": ["unassalpha"]} if array.shape[-1] in (2, 4) else {}
    photometric = "minisblack" if array.shape[-1] <= 2 else "rgb"
    tifffile.imwrite(buffer, array[..., 0] if array.shape[-1] == 1 else array,
                     photometric=photometric, iccprofile=icc, **extra)
  elif array.dtype == np.uint8 or array.shape[-1] == 1:
    from PIL import Image

    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(
        buffer, format="PNG", **({"icc_profile": icc} if icc else {}))
  else:
    import png

    height, width, planes = array.shape
    png.Writer(width, height, greyscale=planes <= 2, alpha=planes in (2, 4),
               bitdepth=16).write(buffer, array.reshape(height, width * planes))
    if icc:
      return _with_png_icc(buffer.getvalue(), icc)
  return buffer.getvalue()


def _with_png_icc(data: bytes, icc: bytes) -> bytes:
  """A PNG's bytes with an iCCP chunk (the profile, zlib-compressed) after its header."""
  import png

  chunks = list(png.Reader(bytes=data).chunks())
  chunks.insert(1, (b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
  out = io.BytesIO()
  png.write_chunks(out, chunks)
  return out.getvalue()

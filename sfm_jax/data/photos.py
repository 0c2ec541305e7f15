"""Users' photos in and out, keeping what the file was: bit depth (8 or 16), gray or colour, an
alpha channel, and the EXIF orientation (applied on reading, so outputs stand upright).

PIL reads 8-bit files and 16-bit gray ones; 16-bit colour PNGs, which PIL reads as 8-bit, go
through pypng, and TIFFs through tifffile. 16-bit PNGs other than plain gray are written by
pypng (PIL cannot write them).
"""

from __future__ import annotations

import dataclasses
import io
import pathlib

import numpy as np

from sfm_jax.errors import DataError
from sfm_jax.weights import write_atomically

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SUFFIXES = (".tif", ".tiff")
# EXIF orientation -> how to stand the stored pixels upright (PIL's ImageOps.exif_transpose).
_UPRIGHT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.rot90(a, 1),
}


@dataclasses.dataclass
class Photo:
  """pixels: float32 (H, W, 1|3) in [0, 1], the colour channels; alpha: (H, W) in [0, 1] or
  None; bit_depth: 8 or 16, the file's."""
  pixels: np.ndarray
  alpha: np.ndarray | None
  bit_depth: int

  @property
  def mode(self) -> str:
    return ("L" if self.pixels.shape[-1] == 1 else "RGB") + ("A" if self.alpha is not None else "")


def read_photo(path: str | pathlib.Path) -> Photo:
  """Reads an image file upright; DataError (one sentence naming the fix) if it cannot."""
  path = pathlib.Path(path)
  try:
    array, orientation = _read_array(path)
  except DataError:
    raise
  except Exception as error:  # PIL, pypng and tifffile raise many types for damaged files
    raise DataError(f"cannot read {path.name} ({type(error).__name__}: "
                    f"{str(error)[:80]}); is it an image?") from None
  if orientation in _UPRIGHT:
    array = _UPRIGHT[orientation](array)
  return _split(np.ascontiguousarray(array), path.name)


def _read_array(path: pathlib.Path) -> tuple[np.ndarray, int]:
  """(the stored pixels (H, W[, C]) uint8/uint16, EXIF orientation)."""
  if path.suffix.lower() in _TIFF_SUFFIXES:
    import tifffile

    with tifffile.TiffFile(path) as tif:
      tag = tif.pages[0].tags.get("Orientation")
      return tif.asarray(), int(tag.value) if tag is not None else 1
  from PIL import Image

  with Image.open(path) as image:
    orientation = int(image.getexif().get(0x0112, 1))
    if _is_16bit_png(path):
      return _read_png16(path), orientation
    if image.mode == "P":
      image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("1", "CMYK", "YCbCr"):
      image = image.convert("L" if image.mode == "1" else "RGB")
    return np.asarray(image), orientation


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


def _split(array: np.ndarray, name: str) -> Photo:
  """Stored pixels -> Photo; DataError for what restoration cannot keep (float, > 16 bits)."""
  if array.dtype == bool:
    array = array.astype(np.uint8) * 255
  if array.dtype == np.uint8:
    depth, peak = 8, 255.0
  elif array.dtype.kind in "iu" and array.min(initial=0) >= 0 and array.max(initial=0) <= 65535:
    depth, peak = 16, 65535.0  # uint16, and PIL's int32 for 16-bit gray PNG
  else:
    raise DataError(f"{name} holds {array.dtype} pixels; restore reads 8- and 16-bit images "
                    "(convert float or 32-bit images to 16-bit PNG or TIFF first).")
  if array.ndim == 2:
    array = array[:, :, None]
  if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
    raise DataError(f"{name} has shape {array.shape}; restore reads gray, gray+alpha, RGB "
                    "and RGBA images.")
  values = array.astype(np.float32) / peak
  colour, alpha = (values[..., :-1], values[..., -1]) if array.shape[-1] in (2, 4) else (
      values, None)
  return Photo(colour, alpha, depth)


def write_photo(path: str | pathlib.Path, photo: Photo) -> None:
  """Writes `photo` as PNG or TIFF (by suffix) at its bit depth, atomically (a reader sees no
  half-written file), creating the folder."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  peak, dtype = (255, np.uint8) if photo.bit_depth == 8 else (65535, np.uint16)
  planes = [photo.pixels] + ([photo.alpha[..., None]] if photo.alpha is not None else [])
  array = np.round(np.clip(np.concatenate(planes, axis=-1), 0, 1) * peak).astype(dtype)
  write_atomically(path, _encode(array, path.suffix.lower()))


def _encode(array: np.ndarray, suffix: str) -> bytes:
  """(H, W, 1..4) uint8/uint16 -> the bytes of a PNG, or of a TIFF for .tif/.tiff."""
  buffer = io.BytesIO()
  if suffix in _TIFF_SUFFIXES:
    import tifffile

    extra = {"extrasamples": ["unassalpha"]} if array.shape[-1] in (2, 4) else {}
    photometric = "minisblack" if array.shape[-1] <= 2 else "rgb"
    tifffile.imwrite(buffer, array[..., 0] if array.shape[-1] == 1 else array,
                     photometric=photometric, **extra)
  elif array.dtype == np.uint8 or array.shape[-1] == 1:
    from PIL import Image

    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, format="PNG")
  else:
    import png

    height, width, planes = array.shape
    png.Writer(width, height, greyscale=planes <= 2, alpha=planes in (2, 4),
               bitdepth=16).write(buffer, array.reshape(height, width * planes))
  return buffer.getvalue()

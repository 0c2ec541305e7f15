"""Restore your own images, without ground truth: denoise or upscale a file or a folder.

  python -m sfm_jax.restore --weights sfm:dncnn_b_sfm --input photos/ --output restored/
  python -m sfm_jax.restore --weights runs/rrdb_x4/weights.msgpack --input lr.png --output sr/
  python -m sfm_jax.restore --weights W --input photos/ --output out/ --dry_run

--weights is a weights file (train.py, python -m sfm_jax.convert) or a pretrained name
(python -m sfm_jax.pretrained --list). Denoisers: blind ones (DnCNN-B, MemNet, RIDNet, U-Net)
need nothing; FFDNet and the DCT denoiser take --sigma, or estimate it from each image (Liu,
Tanaka, Okutomi 2013: weak-texture patches; sfm_jax.noise_estimation). Super-resolvers: the
scale comes from the weights file. A gray model on a colour image is applied to R, G, B as one
batch (--color per_channel, the default) or to the luma Y alone, Cb and Cr kept (--color luma;
for SR they are upscaled bicubic); a colour model on a gray image sees it as R = G = B.

Images are read as training and evaluation read them (sfm_jax.data.photos: every PIL mode;
multi-page files are refused by name; --max_image_pixels raises PIL's ~179 MP limit). Outputs
keep the input's size (times the scale), gray/colour mode, alpha channel (passed through; for SR
upscaled bicubic), bit depth (8 or 16) and ICC profile, are stood upright by the EXIF
orientation, and are written as OUT/<name>.png (--format tiff: .tif). An input is never
overwritten; an existing output is kept unless --overwrite. An image whose activations do not
fit half the available memory (the model's bytes per pixel, from XLA's memory analysis) or
2 GiB per call is processed in the largest
tiles that do (--tile N forces tiles of N input pixels), each with the model's receptive field
as context (from its card: DnCNN-B 17 pixels, MemNet 74, the U-Net 158) and aligned to its
size multiple, so tiles give the whole-image output (within float rounding; RIDNet's and
RCAN's channel attention pools over the whole input, so theirs is close). Files that cannot be
read or restored are listed at the end; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import pathlib
import sys
import time

import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from sfm_jax import cli, ops, pretrained
from sfm_jax.data.images import IMAGE_SUFFIXES, image_files
from sfm_jax.data.photos import Photo, read_photo, write_photo
from sfm_jax.errors import DataError
from sfm_jax.inference import (
    activation_bytes_per_pixel,
    auto_tile,
    make_apply,
    restore_batch,
    tile_count,
)
from sfm_jax.models import REGISTRY, ModelCard, model_card
from sfm_jax.noise_estimation import estimate_noise_sigma
from sfm_jax.weights import load_model

FORMATS = {"png": ".png", "tiff": ".tif", "jpg": ".jpg"}


@dataclasses.dataclass(frozen=True)
class Options:
  """How images are restored (the command's flags)."""
  sigma: float | None = None  # noise σ on the 0–255 scale for FFDNet / DCT denoiser; None: estimate
  color: str = "per_channel"  # gray model on colour images: "per_channel" or "luma"
  tile: int = 0  # tile size in input pixels; 0: whole images, or tiles sized to the memory
  tile_overlap: int | None = None  # context pixels per tile; None: the model's receptive field
  self_ensemble: bool = False
  memory_budget: float | None = None  # bytes for one call; None: half the available memory
  max_image_pixels: int | None = None  # decompression-bomb limit; None: PIL's (~179 MP); 0: none
  outscale: float | None = None  # final size / input size (Lanczos after the model); None: its scale
  quality: int = 95  # JPEG output quality


@dataclasses.dataclass(frozen=True)
class Restorer:
  """A loaded model and its card: apply(x (1, H, W, C), level (1,)) -> (1, s·H, s·W, C)."""
  card: ModelCard
  apply: object
  model: object = None

  @functools.cached_property
  def bytes_per_pixel(self) -> float:
    """The model's activation memory per input pixel (XLA's analysis, measured once)."""
    return activation_bytes_per_pixel(self.model, self.card.channels,
                                      self.card.role != "super_resolver",
                                      self.card.size_multiple)

  @classmethod
  def load(cls, weights: str) -> Restorer:
    model, card, _ = load_model(pretrained.resolve(weights))
    if not card.restores_images:
      raise DataError(f"{weights} holds a {card.name!r} model ({card.role.replace('_', ' ')}"
                      f"{', which needs a kernel code' if card.takes_kernel_code else ''}); "
                      "restore runs denoisers and super-resolvers: "
                      f"{', '.join(sorted(_restorable()))}.")
    apply = make_apply(model)
    if card.role == "super_resolver":  # no noise-level input
      return cls(card, lambda x, level: apply(x), model)
    return cls(card, apply, model)


def _restorable() -> list[str]:
  return [name for name in REGISTRY if model_card(name).restores_images]


def restore_photo(restorer: Restorer, photo: Photo, options: Options) -> tuple[Photo, str]:
  """The restored photo (same mode, bit depth and ICC profile, s× the size) and a note (the σ
  used, the tiles)."""
  pixels, note = photo.pixels, ""
  batch, rebuild = _model_inputs(pixels, restorer.card.channels, options.color)
  sigma = options.sigma
  if restorer.card.takes_noise_level and sigma is None:  # of what the model sees (luma: Y's)
    sigma = estimate_noise_sigma(np.concatenate(list(batch), axis=-1))
    note = f"σ estimated {sigma:.1f}"
  tile = _tile_size(batch.shape[:3], restorer, options)
  restored = np.clip(rebuild(_run(restorer, batch, (sigma or 0.0) / 255.0, tile, options),
                             restorer.card.scale), 0.0, 1.0)
  alpha = photo.alpha
  if alpha is not None and restorer.card.scale > 1:
    alpha = np.clip(np.asarray(ops.imresize(jnp.asarray(alpha)[:, :, None],
                                            scale=restorer.card.scale))[:, :, 0], 0.0, 1.0)
  if options.outscale is not None and options.outscale != restorer.card.scale:
    size = final_size(photo.pixels.shape[:2], options.outscale)
    restored = lanczos_resize(restored, size)
    alpha = None if alpha is None else lanczos_resize(alpha[..., None], size)[..., 0]
  if tile:
    note = ", ".join(filter(None, [note, f"tiles of {tile} px"]))
  return Photo(restored.astype(np.float32), alpha, photo.bit_depth, photo.icc_profile), note


def final_size(shape: tuple[int, int], outscale: float) -> tuple[int, int]:
  """(H, W) of an (h, w) input at `outscale` (rounded, as Real-ESRGAN's --outscale)."""
  return max(round(shape[0] * outscale), 1), max(round(shape[1] * outscale), 1)


def lanczos_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """(h, w, C) float32 in [0, 1] -> (H, W, C), Lanczos-3 per channel in float (PIL's "F"
  mode: no 8-bit rounding between the model and the file), clipped to [0, 1]."""
  from PIL import Image

  planes = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32), "F")
                       .resize(size[::-1], Image.Resampling.LANCZOS))
            for c in range(image.shape[-1])]
  return np.clip(np.stack(planes, axis=-1), 0.0, 1.0)


def _model_inputs(pixels: np.ndarray, channels: int, color: str):
  """(the (N, H, W, channels) batch to run the model on, f(outputs, scale) -> (sH, sW, C)
  image): the image itself (N = 1), R = G = B for a colour model on gray, or for a gray model
  on colour R, G and B as a batch of three (per_channel) or Y alone (luma)."""
  have = pixels.shape[-1]
  if have == channels:
    return pixels[None], lambda outs, scale: outs[0]
  if channels == 3:  # a colour model on a gray image: R = G = B, then their mean
    return (np.repeat(pixels, 3, axis=-1)[None],
            lambda outs, scale: outs[0].mean(-1, keepdims=True))
  if color == "per_channel":
    return (np.moveaxis(pixels, -1, 0)[..., None],
            lambda outs, scale: np.moveaxis(outs[..., 0], 0, -1))
  ycbcr = np.asarray(ops.rgb_to_ycbcr(jnp.asarray(pixels)))

  def rebuild(outs, scale):
    chroma = ycbcr[..., 1:] if scale == 1 else np.asarray(ops.imresize(jnp.asarray(
        ycbcr[..., 1:]), scale=scale))
    return np.asarray(ops.ycbcr_to_rgb(jnp.asarray(np.concatenate([outs[0], chroma], -1))))

  return ycbcr[None, ..., :1], rebuild


def _tile_size(shape: tuple[int, int, int], restorer: Restorer, options: Options) -> int:
  """0 (whole images) or the tile size in input pixels for a batch of `shape` (N, H, W):
  --tile, else what fits the memory."""
  if options.tile:
    return options.tile if max(shape[1:]) > options.tile else 0
  return auto_tile(shape[1:], restorer.bytes_per_pixel * shape[0],
                   _overlap(restorer.card, options), restorer.card.size_multiple,
                   options.memory_budget)


def _overlap(card: ModelCard, options: Options) -> int:
  return card.receptive_field if options.tile_overlap is None else options.tile_overlap


def _run(restorer: Restorer, batch: np.ndarray, level: float, tile: int,
         options: Options) -> np.ndarray:
  """The model on an (N, H, W, C) batch -> (N, s·H, s·W, C) float32, with a progress bar over
  the tiles when there are several."""
  card = restorer.card
  tiles = tile_count(batch.shape[1:3], tile, card.size_multiple) if tile else 1
  with tqdm(total=tiles, desc="tiles", unit="tile", leave=False, disable=tiles == 1) as bar:
    return restore_batch(restorer.apply, batch, level, multiple=card.size_multiple, tile=tile,
                         tile_overlap=_overlap(card, options),
                         self_ensemble=options.self_ensemble, progress=bar.update)


def plan_outputs(inputs: list[pathlib.Path], output: pathlib.Path, suffix: str,
                 name_suffix: str = "") -> list[tuple[pathlib.Path, pathlib.Path]]:
  """(input, output path) pairs, one distinct output per input even on a case-insensitive
  disk: OUT/<stem><suffix> (OUT/<stem>_<name_suffix><suffix> with a `name_suffix`, as
  Real-ESRGAN's --suffix); OUT/<stem>_<ext>... where inputs share a stem (a.png and a.jpg);
  then _2, _3, ... for any name still taken (a.png and a.PNG, or a_png.png)."""
  suffix = f"_{name_suffix}{suffix}" if name_suffix else suffix
  stems = [path.stem.lower() for path in inputs]
  taken: set[str] = set()
  pairs = []
  for path in inputs:
    shared = stems.count(path.stem.lower()) > 1
    base = f"{path.stem}_{path.suffix[1:].lower()}" if shared else path.stem
    name, count = base, 1
    while (name + suffix).lower() in taken:
      count += 1
      name = f"{base}_{count}"
    taken.add((name + suffix).lower())
    pairs.append((path, output / (name + suffix)))
  return pairs


def find_inputs(given: str) -> list[pathlib.Path]:
  """The image files of a file or a folder (not recursive), sorted."""
  path = pathlib.Path(given).expanduser()
  if path.is_file():
    return [path]
  if not path.is_dir():
    raise DataError(f"--input {given} does not exist; give an image file or a folder of images.")
  files = image_files(path)
  if not files:
    raise DataError(f"--input {given} holds no {'/'.join(IMAGE_SUFFIXES)} files.")
  return files


def restore_all(restorer: Restorer, pairs, options: Options, overwrite: bool = False,
                dry_run: bool = False, progress: bool = True) -> list[tuple[pathlib.Path, str]]:
  """Restores every (input, output) pair; returns the failures as (input, reason). With
  `dry_run`, reads each input and says what would be written, writing nothing."""
  inputs = {path.resolve() for path, _ in pairs}
  failures, done = [], 0
  start = time.perf_counter()
  for source, target in tqdm(pairs, desc="restoring", unit="image", disable=not progress):
    if target.resolve() in inputs:
      failures.append((source, f"{target.name} would overwrite an input; choose another "
                               "--output folder"))
      continue
    if target.exists() and not overwrite:
      tqdm.write(f"skipped {source.name}: {target} exists (--overwrite to replace it)")
      continue
    try:
      photo = read_photo(source, options.max_image_pixels)
      if photo.alpha is not None and target.suffix == ".jpg":  # JPEG has no alpha
        target = target.with_suffix(".png")
        tqdm.write(f"{source.name} has an alpha channel, which JPEG cannot hold: writing PNG")
        if target.resolve() in inputs or (target.exists() and not overwrite):
          failures.append((source, f"{target} exists or is an input; choose another --output "
                                   "folder or pass --overwrite"))
          continue
      if dry_run:
        tqdm.write(_describe(source, target, photo, restorer, options))
        continue
      restored, note = restore_photo(restorer, photo, options)
      write_photo(target, restored, options.quality)
      done += 1
      tqdm.write(f"{source.name} -> {target}" + (f" ({note})" if note else ""))
    except (DataError, ValueError, OSError) as error:
      failures.append((source, str(error)))
    except KeyboardInterrupt:
      print(f"\ninterrupted during {source.name}: {done} of {len(pairs)} images were restored "
            "and written (listed above; nothing half-written); rerun the same command to "
            "restore the rest: finished outputs are skipped.", file=sys.stderr)
      raise
  if not dry_run:
    print(f"restored {done} of {len(pairs)} images in {time.perf_counter() - start:.1f} s")
  return failures


def _describe(source, target, photo: Photo, restorer: Restorer, options: Options) -> str:
  h, w = photo.pixels.shape[:2]
  batch, _ = _model_inputs(photo.pixels, restorer.card.channels, options.color)
  tile = _tile_size(batch.shape[:3], restorer, options)
  out_h, out_w = final_size((h, w), options.outscale or restorer.card.scale)
  return (f"{source.name} ({w}×{h} {photo.mode} {photo.bit_depth}-bit) -> {target} "
          f"({out_w}×{out_h}, "
          + (f"tiles of {tile} px" if tile else "whole image") + ")")


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m sfm_jax.restore",
                                   description=__doc__.splitlines()[0], epilog=__doc__
                                   .split("\n\n", 2)[2],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--weights", required=True,
                      help="Weights file or pretrained name (e.g. sfm:dncnn_b_sfm).")
  parser.add_argument("--input", required=True, help="An image file or a folder of images.")
  parser.add_argument("--output", required=True, help="Folder for the restored images.")
  parser.add_argument("--sigma", type=float, help="Noise σ (0–255) for FFDNet / the DCT "
                      "denoiser, of what the model sees (with --color luma: of Y); default: "
                      "estimated per image (Liu et al. 2013). Blind models ignore it.")
  parser.add_argument("--color", choices=["per_channel", "luma"], default="per_channel",
                      help="A gray model on colour images: each of R, G, B, or the luma only.")
  parser.add_argument("--format", choices=sorted(FORMATS), default="png", help="Output format "
                      "(jpg: 8-bit; an image with alpha is written as PNG).")
  parser.add_argument("--quality", type=int, default=95, help="JPEG quality, 1–95.")
  parser.add_argument("--outscale", type=float, help="Final size / input size: the model's "
                      "output resized by Lanczos (Real-ESRGAN's --outscale; default: the "
                      "model's scale).")
  parser.add_argument("--suffix", default="", help="Output names OUT/<name>_<suffix>.<ext> "
                      "(default: OUT/<name>.<ext>).")
  parser.add_argument("--tile", type=int, default=0, help="Tile size in input pixels (default: "
                      "whole images where they fit the memory, else the largest tiles that do).")
  parser.add_argument("--tile_overlap", type=int, help="Context pixels per tile (default: the "
                      "model's receptive field, from its card: tiles then equal the whole image).")
  parser.add_argument("--self_ensemble", action="store_true", help="Mean of the ×8 flips and "
                      "rotations (8× slower).")
  parser.add_argument("--max_image_pixels", type=int, help="Read images up to this many pixels "
                      "(default: PIL's decompression-bomb limit, ~179 MP; 0: no limit).")
  parser.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
  parser.add_argument("--dry_run", action="store_true", help="List what would be done.")
  return parser.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
  if args.sigma is not None and not 0 <= args.sigma <= 255:
    raise DataError(f"--sigma {args.sigma}: give the noise level on the 0–255 scale.")
  if min(args.tile, args.tile_overlap or 0, args.max_image_pixels or 0) < 0:
    raise DataError("--tile, --tile_overlap and --max_image_pixels must be >= 0.")
  if args.outscale is not None and not 0 < args.outscale <= 16:
    raise DataError(f"--outscale {args.outscale}: give the final scale, e.g. 3.5 (0 < F <= 16).")
  if not 1 <= args.quality <= 95:
    raise DataError(f"--quality {args.quality}: give a JPEG quality from 1 to 95.")
  if any(c in args.suffix for c in "/\\"):
    raise DataError(f"--suffix {args.suffix!r}: give a name part without folders, e.g. out.")
  return Options(sigma=args.sigma, color=args.color, tile=args.tile,
                 tile_overlap=args.tile_overlap, self_ensemble=args.self_ensemble,
                 max_image_pixels=args.max_image_pixels, outscale=args.outscale,
                 quality=args.quality)


def main(argv=None) -> int:
  args = parse_args(argv)
  try:
    options = options_from(args)
    output = pathlib.Path(args.output).expanduser()
    if output.exists() and not output.is_dir():
      raise DataError(f"--output {output} is a file; give a folder.")
    pairs = plan_outputs(find_inputs(args.input), output, FORMATS[args.format], args.suffix)
    restorer = Restorer.load(args.weights)
    if not restorer.card.takes_noise_level and args.sigma is not None:
      print(f"note: {restorer.card.name} is blind; --sigma is ignored.")
    failures = restore_all(restorer, pairs, options, args.overwrite, args.dry_run)
  except (DataError, ValueError, ImportError, FileNotFoundError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  for source, reason in failures:
    print(f"failed: {source}: {reason}", file=sys.stderr)
  if failures:
    print(f"{len(failures)} of {len(pairs)} images failed (listed above).", file=sys.stderr)
  return 1 if failures else 0


def run():
  """Console-script entry point (sfm-restore)."""
  cli.prepare_process()
  try:
    sys.exit(main())
  except KeyboardInterrupt:  # restore_all said what was written
    sys.exit(130)


if __name__ == "__main__":
  run()

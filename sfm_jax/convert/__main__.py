"""python -m sfm_jax.convert PATH.pth --arch ARCH --out FILE

ARCH: dncnn, ffdnet (IPOL's), memnet, ridnet, rrdb, unet, vgg19_features (torchvision VGG19,
for ESRGAN's perceptual loss), vgg_discriminator (ESRGAN's Discriminator_VGG_128). Legacy and
zip .pth files are read without PyTorch (sfm_jax.convert.pth_reader)."""

import argparse
import pathlib
import sys

from sfm_jax.convert import MAPPERS, convert_checkpoint
from sfm_jax.models import count_params
from sfm_jax.weights import read_stored, save_weights


def check_output(checkpoint: str, out: str, overwrite: bool) -> None:
  """Refuses an --out that is the checkpoint itself, an existing file that is not a weights
  file, or (without --overwrite) an existing weights file: nothing of the user's is replaced."""
  target = pathlib.Path(out)
  if not target.exists():
    return
  if target.resolve() == pathlib.Path(checkpoint).resolve():
    raise ValueError(f"--out {out} is the checkpoint itself; write the weights file elsewhere.")
  try:
    read_stored(target)
  except Exception:  # noqa: BLE001 - any unreadable file is not ours to replace
    raise ValueError(f"--out {out} exists and is not an sfm-jax weights file; it is left as it "
                     "is: choose another --out.") from None
  if not overwrite:
    raise ValueError(f"--out {out} exists; pass --overwrite to replace it.")


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m sfm_jax.convert", description=__doc__)
  parser.add_argument("checkpoint", help="PyTorch .pth state_dict (legacy or zip format)")
  parser.add_argument("--arch", required=True, choices=sorted(MAPPERS))
  parser.add_argument("--out", required=True, help="sfm-jax weights file to write (.msgpack)")
  parser.add_argument("--overwrite", action="store_true", help="Replace an existing weights "
                      "file at --out (any other file is never replaced).")
  args = parser.parse_args(argv)
  try:
    check_output(args.checkpoint, args.out, args.overwrite)
    model, kwargs, dropped = convert_checkpoint(args.checkpoint, args.arch)
  except (ValueError, ImportError, FileNotFoundError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  save_weights(args.out, model, args.arch, kwargs)
  if dropped:
    print(f"dropped {len(dropped)} keys the original's forward never uses: {', '.join(dropped)}")
  print(f"{args.arch} {kwargs}: {count_params(model):,} parameters -> {args.out}")
  return 0


def run():
  """The `sfm-convert` console script."""
  sys.exit(main())


if __name__ == "__main__":
  run()

"""python -m sfm_jax.convert PATH.pth --arch ARCH --out FILE

ARCH: dncnn, ffdnet (IPOL's), memnet, ridnet, rrdb, unet, vgg19_features (torchvision VGG19,
for ESRGAN's perceptual loss), vgg_discriminator (ESRGAN's Discriminator_VGG_128). Legacy and
zip .pth files are read without PyTorch (sfm_jax.convert.pth_reader)."""

import argparse
import sys

from sfm_jax.convert import MAPPERS, convert_checkpoint
from sfm_jax.models import count_params
from sfm_jax.weights import save_weights


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m sfm_jax.convert", description=__doc__)
  parser.add_argument("checkpoint", help="PyTorch .pth state_dict (legacy or zip format)")
  parser.add_argument("--arch", required=True, choices=sorted(MAPPERS))
  parser.add_argument("--out", required=True, help="sfm-jax weights file to write (.msgpack)")
  args = parser.parse_args(argv)
  try:
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

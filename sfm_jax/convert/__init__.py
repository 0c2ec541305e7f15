"""Import PyTorch checkpoints of the original networks into sfm-jax weight files.

  python -m sfm_jax.convert net.pth --arch dncnn --out dncnn_b.msgpack
"""

from __future__ import annotations

from sfm_jax.convert.pytorch import (
    INFER_KWARGS,
    MAPPERS,
    convert_state_dict,
    load_torch_state_dict,
    to_pure_dict,
)
from sfm_jax.models import get_model
from sfm_jax.weights import load_state_into


def _infer_kwargs(arch: str, converted: dict) -> dict:
  """Constructor arguments read off the weights (channels, depth) where they vary."""
  if arch in INFER_KWARGS:
    return INFER_KWARGS[arch](converted)
  if arch == "dncnn":
    first = converted[("body", "convs", 0, "kernel")]
    depth = 1 + max(p[2] for p in converted if p[1] == "convs")
    return {"channels": int(first.shape[2]), "num_layers": int(depth),
            "features": int(first.shape[3])}
  if arch == "memnet":
    conv = converted[("feature_extractor", "conv", "kernel")]
    blocks = 1 + max(p[1] for p in converted if p[0] == "dense_memory")
    resblocks = 1 + max(p[3] for p in converted
                        if p[0] == "dense_memory" and p[2] == "recursive_unit")
    return {"channels": int(conv.shape[2]), "features": int(conv.shape[3]),
            "num_memblock": int(blocks), "num_resblock": int(resblocks)}
  if arch == "rrdb":
    first = converted[("conv_first", "kernel")]
    upsampler = [v for p, v in converted.items() if p[:2] == ("upsampler", "convs")
                 and p[-1] == "kernel"]
    nf = int(first.shape[3])
    scale = 4 if len(upsampler) != 1 else {4: 2, 9: 3}[upsampler[0].shape[3] // nf]
    return {"channels": int(first.shape[2]), "scale": scale, "nf": nf,
            "nb": 1 + max(p[1] for p in converted if p[0] == "trunk"),
            "gc": int(converted[("trunk", 0, "blocks", 0, "convs", 0, "kernel")].shape[3]),
            "esrgan_upsampler": not upsampler}
  if arch == "ridnet":
    return {"channels": int(converted[("head", "kernel")].shape[2])}
  return {"channels": int(converted[("enc_conv0", "kernel")].shape[2])}


def convert_checkpoint(path: str, arch: str, overrides: dict | None = None):
  """Loads a PyTorch checkpoint into the matching sfm-jax model, strictly; `overrides` sets
  constructor arguments the weights do not show (e.g. the U-Net's input_offset).

  Returns (model, kwargs, dropped): dropped lists the known-unused keys left out (RRDBNet).
  Raises ValueError naming unmapped, missing or mis-shaped keys.
  """
  state_dict = load_torch_state_dict(path)
  converted, unmapped, dropped = convert_state_dict(state_dict, arch)
  if unmapped:
    raise ValueError(f"{path}: {len(unmapped)} keys have no place in the {arch} model, e.g. "
                     f"{unmapped[:5]}; is --arch right?")
  try:
    kwargs = _infer_kwargs(arch, converted)
  except (KeyError, ValueError) as error:
    raise ValueError(f"{path} does not look like a {arch} checkpoint (no {error}); is --arch "
                     "right?") from None
  kwargs.update(overrides or {})
  model = get_model(arch, **kwargs)
  load_state_into(model, to_pure_dict(converted), path)
  return model, kwargs, dropped


__all__ = ["MAPPERS", "convert_checkpoint", "convert_state_dict"]

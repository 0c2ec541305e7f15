"""PyTorch state_dicts of the SFM authors' networks -> sfm-jax model state.

Key mapping (documented per architecture below):
  * the DataParallel prefix `module.` is stripped;
  * conv `weight` (O, I, kh, kw) -> `kernel` (kh, kw, I, O), i.e. transpose(2, 3, 1, 0); PyTorch
    convs are cross-correlations like `lax.conv`, so kernels are not flipped; `bias` -> `bias`;
  * BatchNorm `weight` -> `scale`, `bias` -> `bias`, `running_mean` -> `mean`, `running_var` ->
    `var` (eps 1e-5 and momentum 0.1 = Flax 0.9 are the models' defaults);
    `num_batches_tracked` is dropped.
Conversion is strict: unmapped, missing and mis-shaped keys are reported by name. The only
keys dropped are known-dead ones: SFM's RRDBNet state_dict carries `upconv1-4`, `HRconv` and
`conv_last` (12 keys, 184,641 parameters of the gray ×4 net) that its forward never uses; the
SFM layout is recognised by its `tail.*` upsampler, and a state_dict without one is read as the
original ESRGAN generator (upconv1/2 + HRconv + conv_last, `esrgan_upsampler=True`).
A torchvision VGG-19 state_dict (`vgg19_features`) keeps `features.<i>` up to conv5_4 and drops
its `classifier.*` head (the perceptual loss never uses it); a 2-D Linear `weight` (out, in) ->
`kernel` (in, out), i.e. transposed.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable

import numpy as np

from sfm_jax.convert.pth_reader import CheckpointFormatError, read_pth

BN_NAMES = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
Path = tuple
UNUSED = ("<unused>",)  # a mapper's answer for a key the original's forward never reads


def _dncnn(parts: list[str]) -> Path | None:
  """`dncnn.dncnn.<i>.*` (nn.Sequential): conv at 0 and 2 + 3k, BatchNorm at 3 + 3k."""
  if parts[:2] != ["dncnn", "dncnn"]:
    return None
  index, name = int(parts[2]), parts[3]
  if index == 0 or (index - 2) % 3 == 0:
    return ("body", "convs", 0 if index == 0 else (index - 2) // 3 + 1, name)
  if (index - 3) % 3 == 0:
    return ("body", "norms", (index - 3) // 3, name)
  return None


def _ffdnet(parts: list[str]) -> Path | None:
  """IPOL FFDNet's body, `intermediate_dncnn.itermediate_dncnn.<i>.*` (its spelling), is laid
  out as DnCNN's nn.Sequential."""
  if parts[:2] != ["intermediate_dncnn", "itermediate_dncnn"]:
    return None
  return _dncnn(["dncnn", "dncnn", *parts[2:]])


def _memnet(parts: list[str]) -> Path | None:
  """Module names are the same as the original's (feature_extractor, dense_memory.<b>.
  recursive_unit.<r>.relu_conv{1,2}, gate_unit, reconstructor), each with `.bn` and `.conv`."""
  return tuple(int(p) if p.isdigit() else p for p in parts)


_RIDNET_RULES = [
    (r"^(sub_mean|add_mean)\.(\w+)$", lambda m: (m[1], "conv", m[2])),
    (r"^head\.body\.0\.(\w+)$", lambda m: ("head", m[1])),
    (r"^tail\.(\w+)$", lambda m: ("tail", m[1])),
    (r"^b(\d)\.r1\.(body[12])\.([02])\.(\w+)$",
     lambda m: ("blocks", int(m[1]) - 1, "r1", m[2], int(m[3]) // 2, m[4])),
    (r"^b(\d)\.r1\.body3\.0\.(\w+)$", lambda m: ("blocks", int(m[1]) - 1, "r1", "body3", m[2])),
    (r"^b(\d)\.(r[23])\.body\.([024])\.(\w+)$",
     lambda m: ("blocks", int(m[1]) - 1, m[2], "body", int(m[3]) // 2, m[4])),
    (r"^b(\d)\.ca\.(c[12])\.body\.0\.(\w+)$",
     lambda m: ("blocks", int(m[1]) - 1, "ca", m[2], m[3])),
]

_UNET_RULES = [
    (r"^enc_conv([01])\.(\w+)$", lambda m: (f"enc_conv{m[1]}", m[2])),
    (r"^enc_conv([2-6])\.(\w+)$", lambda m: ("enc", int(m[1]) - 2, m[2])),
    (r"^dec_conv5([ab])\.(\w+)$", lambda m: ("dec5", "ab".index(m[1]), m[2])),
    (r"^dec_conv([234])([ab])\.(\w+)$",
     lambda m: ("dec", 4 - int(m[1]), "ab".index(m[2]), m[3])),
    (r"^dec_conv1([abc])\.(\w+)$", lambda m: ("dec1", "abc".index(m[1]), m[2])),
]


_RRDB_TRUNK_RULES = [
    (r"^(conv_first|trunk_conv)\.(\w+)$", lambda m: (m[1], m[2])),
    (r"^RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])\.(\w+)$",
     lambda m: ("trunk", int(m[1]), "blocks", int(m[2]) - 1, "convs", int(m[3]) - 1, m[4])),
]
_RRDB_SFM_RULES = _RRDB_TRUNK_RULES + [
    (r"^tail\.0\.(\d+)\.(\w+)$", lambda m: ("upsampler", "convs", int(m[1]) // 2, m[2])),
    (r"^tail\.1\.(\w+)$", lambda m: ("conv_last", m[1])),
    (r"^(upconv[1-4]|HRconv|conv_last)\.\w+$", lambda m: UNUSED),
]
_RRDB_ESRGAN_RULES = _RRDB_TRUNK_RULES + [
    (r"^upconv([12])\.(\w+)$", lambda m: ("upconvs", int(m[1]) - 1, m[2])),
    (r"^HRconv\.(\w+)$", lambda m: ("hr_conv", m[1])),
    (r"^conv_last\.(\w+)$", lambda m: ("conv_last", m[1])),
]


def _by_rules(rules) -> Callable[[list[str]], Path | None]:
  def mapper(parts):
    key = ".".join(parts)
    for pattern, build in rules:
      match = re.match(pattern, key)
      if match:
        return build(match)
    return None
  return mapper


# torchvision `vgg19().features` indices of its 16 convs (ReLU/max-pool indices hold no weights).
_VGG19_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def _vgg19_features(parts: list[str]) -> Path | None:
  """`features.<i>.{weight,bias}` -> `convs.<k>` (k-th conv); `classifier.*` is dropped."""
  if parts[0] == "classifier":
    return UNUSED
  if (parts[0] == "features" and len(parts) == 3 and parts[1].isdigit()
      and int(parts[1]) in _VGG19_CONVS):
    return ("convs", _VGG19_CONVS.index(int(parts[1])), parts[2])
  return None


# ESRGAN's Discriminator_VGG_128: sfm-jax attribute names equal the PyTorch module names.
_VGG_DISCRIMINATOR_RULES = [
    (r"^(conv\d_\d|bn\d_\d|linear[12])\.(\w+)$", lambda m: (m[1], m[2])),
]


MAPPERS = {"dncnn": _dncnn, "ffdnet": _ffdnet, "memnet": _memnet,
           "ridnet": _by_rules(_RIDNET_RULES),
           "unet": _by_rules(_UNET_RULES), "rrdb": _by_rules(_RRDB_SFM_RULES),
           "vgg19_features": _vgg19_features,
           "vgg_discriminator": _by_rules(_VGG_DISCRIMINATOR_RULES)}


def _vgg_discriminator_kwargs(converted: dict) -> dict:
  first = converted[("conv0_0", "kernel")]
  return {"channels": int(first.shape[2]), "nf": int(first.shape[3])}


def _ffdnet_kwargs(converted: dict) -> dict:
  first = converted[("body", "convs", 0, "kernel")]  # (3, 3, 5·C, features)
  return {"channels": int(first.shape[2]) // 5, "features": int(first.shape[3]),
          "num_layers": 1 + max(p[2] for p in converted if p[1] == "convs")}


# Constructor arguments read off converted weights, for the architectures added after
# `sfm_jax.convert._infer_kwargs` (which should consult this table first).
INFER_KWARGS: dict[str, Callable[[dict], dict]] = {
    "ffdnet": _ffdnet_kwargs,
    "vgg19_features": lambda converted: {},
    "vgg_discriminator": _vgg_discriminator_kwargs,
}


def is_esrgan_layout(keys) -> bool:
  """True for an RRDBNet state_dict in the original ESRGAN layout (no SFM `tail.*`)."""
  return not any(k.removeprefix("module.").startswith("tail.") for k in keys)


def _leaf(path: Path, tensor: np.ndarray) -> tuple[Path, np.ndarray] | None:
  """Renames the last path element and converts the array; None for dropped entries.

  A 4-D `weight` is a conv kernel (OIHW -> HWIO), a 2-D one a Linear kernel (transposed); a 1-D
  `weight` is a BatchNorm scale.
  """
  *parent, name = path
  if name == "num_batches_tracked":
    return None
  if name == "weight" and tensor.ndim == 4:
    return (*parent, "kernel"), np.transpose(tensor, (2, 3, 1, 0))
  if name == "weight" and tensor.ndim == 2:  # nn.Linear (out, in) -> nnx.Linear (in, out)
    return (*parent, "kernel"), tensor.T
  return (*parent, BN_NAMES.get(name, name)), tensor


def convert_state_dict(state_dict: dict[str, np.ndarray], arch: str):
  """Maps a PyTorch state_dict (numpy arrays) to {flax path: array}.

  Returns (converted, unmapped_torch_keys, dropped_unused_keys).
  """
  if arch not in MAPPERS:
    raise ValueError(f"unknown --arch {arch!r}; use one of {sorted(MAPPERS)}.")
  mapper = MAPPERS[arch]
  if arch == "rrdb" and is_esrgan_layout(state_dict):
    mapper = _by_rules(_RRDB_ESRGAN_RULES)
  converted, unmapped, dropped = {}, [], []
  for key, tensor in state_dict.items():
    parts = key.removeprefix("module.").split(".")
    path = mapper(parts)
    if path is None:
      unmapped.append(key)
      continue
    if path == UNUSED:
      dropped.append(key)
      continue
    leaf = _leaf(path, np.asarray(tensor))
    if leaf is not None:
      converted[leaf[0]] = leaf[1].astype(np.float32)
  return converted, unmapped, dropped


def to_pure_dict(flat: dict[Path, np.ndarray]) -> dict:
  """{(a, b, c): x} -> {a: {b: {c: x}}}."""
  tree: dict = {}
  for path, value in flat.items():
    node = tree
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = value
  return tree


def load_torch_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a .pth state_dict (legacy pickle or zip format) as {key: numpy array}; no torch.

  The file is read by `pth_reader.read_pth`, which unpickles nothing but tensors, numbers,
  strings and containers: a pickle that names any other global (code, a model class) raises
  UnsafeCheckpointError (a ValueError) before anything runs. A {"state_dict": {...}} wrapper is
  unwrapped and non-array entries are left out. Raises FileNotFoundError for a missing file and
  ValueError naming the file when it is damaged, cut short, not a checkpoint or not a dict.
  """
  if not pathlib.Path(path).is_file():
    raise FileNotFoundError(f"checkpoint {path} not found; pass the path of a .pth file.")
  try:
    obj = read_pth(path)
  except CheckpointFormatError as error:
    raise ValueError(f"cannot read {path} as a PyTorch checkpoint ({error.reason}): the file is "
                     "damaged, cut short or not a .pth state_dict; download it again.") from None
  if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
    obj = obj["state_dict"]
  if not isinstance(obj, dict):
    raise ValueError(f"{path} holds a {type(obj).__name__}, not a state_dict.")
  return {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}

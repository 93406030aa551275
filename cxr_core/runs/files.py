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

    .lock            held (``flock``) by the one training process that owns the folder

The app reads these files while another process writes them, so a missing file or a
half-written last history line is normal and reads as "nothing yet". A file of the wrong
shape is not: :func:`read_status`, :func:`read_history` and :func:`read_config` check what
they read once and raise :class:`cxr_core.errors.RunFileError` naming the file, and every
other module reads the typed records (:class:`RunStatus`, :class:`HistoryRow`) they return.
Run states are defined once, in :class:`RunState`.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from cxr_core import io
from cxr_core.config import RunConfig
from cxr_core.errors import ConfigError, CXRError, RunFileError, StorageError
from cxr_core.fields import Fields
from cxr_core.io import write_json_atomic
from cxr_core.sidecar import Metrics

if TYPE_CHECKING:
    from cxr_core.runs.progress import Stage

__all__ = [
    "ACTIVE_STATES",
    "RUN_STATES",
    "HistoryRow",
    "RunPaths",
    "RunState",
    "RunStatus",
    "RunSummary",
    "StatusFields",
    "append_history",
    "cancelled_message",
    "now_iso",
    "read_config",
    "read_history",
    "read_json",
    "read_status",
    "status_lock",
    "update_status",
    "write_json_atomic",
]

#: Largest ``history.jsonl`` read (one line per epoch: a few hundred bytes each).
MAX_HISTORY_BYTES = 16 * 1024 * 1024


class RunState(StrEnum):
    """The state of a run. The first six are written by the training process; ``missing``,
    ``unreadable`` and ``unknown`` are what readers conclude."""

    STARTING = "starting"
    PREPARING = "preparing"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    MISSING = "missing"
    UNREADABLE = "unreadable"
    UNKNOWN = "unknown"

    @property
    def active(self) -> bool:
        """Whether a process is (or should be) working on the run."""
        return self in ACTIVE_STATES


#: States a training process writes into ``status.json``.
RUN_STATES = tuple(RunState)[:6]
#: States in which the run's process is alive (or starting).
ACTIVE_STATES = frozenset({RunState.STARTING, RunState.PREPARING, RunState.RUNNING})


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

    @property
    def lock(self) -> Path:
        """Held by the training process that owns the folder (see :mod:`cxr_core.runs.guard`)."""
        return self.root / ".lock"


def now_iso() -> str:
    """Return the current UTC time as an ISO 8601 string (seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_json(path: Path) -> dict[str, Any]:
    """Return the JSON object in ``path``, or ``{}`` if it is missing, unreadable or refused
    (see :func:`cxr_core.io.read_json` for the caps)."""
    try:
        value = io.read_json(path)
    except (OSError, CXRError):
        return {}
    return value if isinstance(value, dict) else {}


#: Held while ``status.json`` is rewritten, so that a watchdog thread's last word is final.
status_lock = threading.RLock()


class StatusFields(TypedDict, total=False):
    """The fields :func:`update_status` writes: those of :class:`RunStatus` but ``updated_at``
    (always written), as JSON values; see :class:`RunStatus` for what each means."""

    state: RunState
    phase: str | None
    stage: Stage | str | None
    epoch: int
    batch: int
    batches_per_epoch: int | None
    total_epochs: int | None
    images_per_second: float | None
    eta_seconds: float | None
    eta_at: str | None
    elapsed_seconds: float | None
    device: str | None
    workers: int | None
    replicas: int | None
    mixed_precision: bool | None
    xla: bool | None
    train_images: int | None
    val_images: int | None
    validation: str | None
    class_weight: dict[int, float] | None
    error: str | None
    message: str | None
    pid: int | None
    process_start: str | None
    started_at: str | None
    finished_at: str | None
    summary: dict[str, Any] | None
    phases_done: list[str]


def update_status(paths: RunPaths, **fields: Unpack[StatusFields]) -> dict[str, Any]:
    """Merge ``fields`` into ``status.json`` atomically and return the new status.

    Raises:
        TypeError: A field that :class:`StatusFields` lacks (a misspelt name), or a ``state``
            that is not a :class:`RunState` a training process writes; nothing is written.
    """
    unknown = sorted(set(fields) - StatusFields.__optional_keys__)
    if unknown:
        raise TypeError(f"update_status got unknown status fields: {', '.join(unknown)}")
    state = fields.get("state")
    if state is not None and not (isinstance(state, RunState) and state in RUN_STATES):
        written = ", ".join(RUN_STATES)
        raise TypeError(f"state must be a RunState: one of {written}. Received: state={state!r}")
    with status_lock:
        status = read_json(paths.status)
        status.update(fields, updated_at=now_iso())
        write_json_atomic(paths.status, status)
    return status


def cancelled_message(paths: RunPaths) -> str:
    """What a cancelled run's status says, with the command that continues it."""
    return (
        f"stopped on request; continue with: python -m cxr_core train --out {paths.root} --resume"
    )


def append_history(paths: RunPaths, row: dict[str, Any]) -> None:
    """Append one epoch's metrics as a JSON line (flushed and synced to disk).

    Raises:
        StorageError: The disk is full or the folder read-only.
    """
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
        with status_lock, open(paths.history, "a+b") as stream:
            torn = False
            if stream.seek(0, os.SEEK_END) > 0:
                stream.seek(-1, os.SEEK_END)
                torn = stream.read(1) != b"\n"
            prefix = b"\n" if torn else b""  # a line torn by a killed process stays apart
            stream.write(prefix + (json.dumps(row, sort_keys=True) + "\n").encode("utf-8"))
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as error:
        raise StorageError(f"cannot write {paths.history}: {io.write_reason(error)}") from None


# ---------------------------------------------------------------------------------------------
# Typed, checked reads


@dataclass(frozen=True)
class HistoryRow:
    """One finished epoch of ``history.jsonl``.

    Attributes:
        epoch: 1-based epoch number.
        phase: ``head``, ``finetune`` or ``scratch`` (None in old files).
        metrics: ``loss``, ``accuracy``, ``auc``, their ``val_`` twins, ``learning_rate``,
            ``seconds``: every number the line holds.
    """

    epoch: int
    phase: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        """The metric ``name`` of this epoch, or None."""
        return self.metrics.get(name)

    @classmethod
    def from_dict(cls, values: Any, source: str) -> HistoryRow:
        """Check one parsed line; raises :class:`RunFileError`."""
        f = Fields(values, source, RunFileError)
        epoch = f.integer("epoch", low=1, required=True)
        phase = f.text("phase")
        numbers = {key: value for key, value in values.items() if key not in ("epoch", "phase")}
        metrics = Fields(numbers, source, RunFileError)
        return cls(
            epoch, phase, {key: metrics.number(key) for key in numbers if numbers[key] is not None}
        )


@dataclass(frozen=True)
class RunSummary:
    """A finished run's validation summary: its metrics and the decision threshold."""

    metrics: Metrics = field(default_factory=Metrics)
    threshold: float | None = None

    @classmethod
    def from_dict(cls, values: Any, source: str = "summary") -> RunSummary:
        """Check a summary object (a report's numbers and ``threshold``); raises
        :class:`RunFileError` naming the key."""
        report = Fields(values, source, RunFileError)
        return cls(Metrics.from_fields(report), report.number("threshold", low=0, high=1))


@dataclass(frozen=True)
class RunStatus:
    """``status.json``, checked. Absent fields are None (or empty)."""

    state: RunState = RunState.UNKNOWN
    phase: str | None = None
    stage: str | None = None
    epoch: int = 0
    batch: int = 0
    batches_per_epoch: int | None = None
    total_epochs: int | None = None
    images_per_second: float | None = None
    eta_seconds: float | None = None
    eta_at: str | None = None
    elapsed_seconds: float | None = None
    device: str | None = None
    workers: int | None = None
    replicas: int | None = None
    mixed_precision: bool | None = None
    xla: bool | None = None
    train_images: int | None = None
    val_images: int | None = None
    validation: str | None = None
    class_weight: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    message: str | None = None
    pid: int | None = None
    process_start: str | None = None
    started_at: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None
    summary: RunSummary | None = None
    phases_done: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, values: Any, source: str = "status.json") -> RunStatus:
        """Check a parsed ``status.json``; raises :class:`RunFileError` naming the key."""
        f = Fields(values, source, RunFileError)
        state = f.text("state", default=RunState.UNKNOWN.value)
        if state not in RUN_STATES:
            f.fail("state", "one of " + ", ".join(RUN_STATES))
        summary = None
        if values.get("summary") is not None:
            report = f.sub("summary")
            summary = RunSummary.from_dict(report.values, report.source)
        count = {"low": 0}
        return cls(
            state=RunState(state),
            phase=f.text("phase"),
            stage=f.text("stage"),
            epoch=f.integer("epoch", 0, **count),
            batch=f.integer("batch", 0, **count),
            batches_per_epoch=f.integer("batches_per_epoch", **count),
            total_epochs=f.integer("total_epochs", **count),
            images_per_second=f.number("images_per_second", low=0),
            eta_seconds=f.number("eta_seconds", low=0),
            eta_at=f.text("eta_at"),
            elapsed_seconds=f.number("elapsed_seconds", low=0),
            device=f.text("device"),
            workers=f.integer("workers", **count),
            replicas=f.integer("replicas", **count),
            mixed_precision=f.boolean("mixed_precision"),
            xla=f.boolean("xla"),
            train_images=f.integer("train_images", **count),
            val_images=f.integer("val_images", **count),
            validation=f.text("validation"),
            class_weight=f.numbers("class_weight"),
            error=f.text("error"),
            message=f.text("message"),
            pid=f.integer("pid", low=1),
            process_start=f.text("process_start"),
            started_at=f.text("started_at"),
            updated_at=f.text("updated_at"),
            finished_at=f.text("finished_at"),
            summary=summary,
            phases_done=f.texts("phases_done"),
        )


def read_status(paths: RunPaths) -> RunStatus:
    """The run's checked status; an absent file gives state ``unknown``.

    Raises:
        RunFileError: ``status.json`` is not JSON or is wrongly shaped.
    """
    try:
        values = io.read_json(paths.status, RunFileError)
    except FileNotFoundError:
        return RunStatus()
    return RunStatus.from_dict(values)


def read_config(paths: RunPaths) -> RunConfig:
    """The run's checked configuration.

    Raises:
        RunFileError: ``config.json`` is missing, not JSON, or not a valid RunConfig.
    """
    try:
        values = io.read_json(paths.config, RunFileError)
    except FileNotFoundError:
        raise RunFileError("config.json cannot be read: it does not exist") from None
    try:
        return RunConfig.from_dict(values)
    except ConfigError as error:
        raise RunFileError(f"config.json: {error}") from None


def read_history(paths: RunPaths) -> list[HistoryRow]:
    """One checked row per epoch, the latest line winning when a resumed run repeated one.

    A line that is not JSON (being written right now, or torn when a process was killed) is
    skipped; a JSON line of the wrong shape is not.

    Raises:
        RunFileError: The file is not UTF-8, or a line is wrongly shaped.
    """
    try:
        data = io.read_regular_bytes(paths.history, MAX_HISTORY_BYTES, RunFileError)
    except FileNotFoundError:
        return []
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise RunFileError("history.jsonl is not UTF-8 text") from None
    by_epoch: dict[int, HistoryRow] = {}
    for number, line in enumerate(lines, start=1):
        try:
            values = io.parse_json(line, f"history.jsonl line {number}", RunFileError)
        except RunFileError:
            continue  # being written right now, or torn by a process killed while writing
        row = HistoryRow.from_dict(values, f"history.jsonl line {number}")
        by_epoch[row.epoch] = row
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]

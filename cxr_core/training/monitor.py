"""What one run's phases share, and the callbacks that report its progress.

:class:`TrainingContext` holds the run's settings and the rates its callbacks measure;
:class:`RunMonitor` writes ``status.json`` every few seconds and ``history.jsonl`` every epoch
and keeps the best weights; :func:`estimate` turns the measured rates into the time left.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from cxr_core.distributed.cluster import ClusterMember
from cxr_core.io import atomic_write
from cxr_core.runs.files import (
    RunPaths,
    RunState,
    append_history,
    now_iso,
    status_lock,
    update_status,
)
from cxr_core.runs.guard import StopRequest
from cxr_core.runs.plan import Phase
from cxr_core.runs.progress import Stage, Workload, remaining_seconds

__all__ = ["GuardedBackup", "RunMonitor", "TrainingContext", "estimate", "save_weights_atomic"]


@dataclass(slots=True)
class TrainingContext:
    """What the phases and callbacks of one run share; the callbacks update the rates.

    Attributes:
        paths: The run folder's files.
        stop: The stop request every batch checks (agreed by all workers under several).
        resume: Whether this attempt continues an earlier one.
        started: ``time.monotonic()`` when this attempt started.
        status_interval: Seconds between ``status.json`` updates during an epoch.
        strategy: The ``tf.distribute`` strategy the model is built and fitted under.
        cluster: This worker of a multi-worker run, else None.
        batch_size: The global batch size.
        workload: Images and steps of the whole run, for the estimates.
        phase_starts: First epoch (0-based) of every planned phase.
        best_auc: Best validation AUC so far (``-inf`` before the first).
        mixed_precision: Whether layers compute in ``mixed_float16``.
        xla: Whether the training step is compiled with XLA.
        train_rate: Training images per second, once measured.
        forward_rate: Validation images per second, once measured.
        phase_start_seconds: What the first phase's start (compiling, tracing, first batch)
            cost, once measured.
    """

    paths: RunPaths
    stop: StopRequest
    resume: bool
    started: float
    status_interval: float
    strategy: tf.distribute.Strategy
    cluster: ClusterMember | None
    batch_size: int
    workload: Workload
    phase_starts: list[int] = field(default_factory=list)
    best_auc: float = -math.inf
    mixed_precision: bool = False
    xla: bool = False
    train_rate: float | None = None
    forward_rate: float | None = None
    phase_start_seconds: float | None = None


class GuardedBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose epoch-end save a stop watchdog never cuts in half."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        with status_lock:
            super().on_epoch_end(epoch, logs)


class RunMonitor(keras.callbacks.Callback):
    """Writes status.json every few seconds, history.jsonl every epoch, keeps the best weights,
    and leaves ``fit`` at the next training or validation batch when a stop is asked for
    (raising StopRequested, so a part-done epoch is neither validated nor recorded).

    Throughput is measured between batch ends within an epoch (an epoch's first batch also waits
    for the input pipeline, and the first of a phase for tracing) and on validation; both rates
    are kept in ``context`` for the estimates of later phases and of finishing.
    """

    def __init__(self, paths: RunPaths, phase: Phase, context: TrainingContext) -> None:
        super().__init__()
        self.paths, self.phase, self.context = paths, phase, context
        self.stop = context.stop
        self.last_write = 0.0
        self.epoch = phase.first_epoch
        self.train_start = time.monotonic()
        self.epoch_start = self.validation_start = time.monotonic()
        self.last_batch_end: float | None = None
        self.timed_batches, self.timed_seconds = 0, 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.train_start = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch, self.epoch_start = epoch, time.monotonic()
        self.last_batch_end, self.timed_batches, self.timed_seconds = None, 0, 0.0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.stop.check()
        now = time.monotonic()
        if self.last_batch_end is not None:
            self._measure(now - self.last_batch_end)
        elif self.epoch == self.phase.first_epoch and self.context.phase_start_seconds is None:
            self.context.phase_start_seconds = now - self.train_start
        self.last_batch_end = now
        if batch == 0 or now - self.last_write >= self.context.status_interval:
            self._write_progress(batch + 1, logs or {}, now)

    def _measure(self, seconds: float) -> None:
        self.timed_batches += 1
        self.timed_seconds += seconds
        steps = self.context.workload.steps_per_epoch
        # A few batches of this epoch, or the last epoch's rate, whichever is firmer.
        if self.timed_batches >= min(5, steps - 1) or self.context.train_rate is None:
            rate = self.timed_batches * self.context.batch_size / max(self.timed_seconds, 1e-6)
            self.context.train_rate = rate

    def _write_progress(self, batch: int, logs: dict, now: float) -> None:
        rate = self.context.train_rate
        update_status(
            self.paths,
            state=RunState.RUNNING,
            stage=Stage.TRAINING,
            phase=self.phase.name,
            epoch=self.epoch + 1,
            batch=batch,
            batches_per_epoch=self.context.workload.steps_per_epoch,
            images_per_second=None if rate is None else round(rate, 1),
            elapsed_seconds=round(now - self.context.started),
            **estimate(self.context, self.epoch + 1, batch),
        )
        self.last_write = now

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.validation_start = time.monotonic()
        steps = self.context.workload.steps_per_epoch
        update_status(
            self.paths,
            stage=Stage.VALIDATING,
            epoch=self.epoch + 1,
            batch=steps,
            **estimate(self.context, self.epoch + 1, steps),
        )

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.stop.check()

    def on_test_end(self, logs: dict | None = None) -> None:
        seconds = max(time.monotonic() - self.validation_start, 1e-6)
        self.context.forward_rate = self.context.workload.val_images / seconds

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = {key: float(value) for key, value in (logs or {}).items()}
        row = {"epoch": epoch + 1, "phase": self.phase.name, **logs}
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row["seconds"] = round(time.monotonic() - self.epoch_start, 1)
        append_history(self.paths, row)
        auc = logs.get("val_auc", float("nan"))
        if math.isfinite(auc) and auc > self.context.best_auc:
            self.context.best_auc = auc
            save_weights_atomic(self.model, self.paths.best_weights)
        # The next epoch of this phase has begun; after the last one, its end is shown.
        following = epoch + 1 < self.phase.last_epoch
        position = (
            (epoch + 2, 0) if following else (epoch + 1, self.context.workload.steps_per_epoch)
        )
        update_status(
            self.paths,
            state=RunState.RUNNING,
            stage=Stage.TRAINING,
            epoch=position[0],
            batch=position[1],
            **estimate(self.context, position[0], position[1], validated=0.0 if following else 1.0),
        )


def estimate(
    context: TrainingContext, epoch: int, batch: int, validated: float = 0.0
) -> dict[str, Any]:
    """``eta_seconds`` and ``eta_at`` for status.json, from the rates measured so far."""
    # Each phase still to start costs what the first one's start (compiling, tracing, the
    # input pipeline's first batch) was measured to cost.
    starts = sum(
        1 for first in context.phase_starts if epoch < first + 1 or (epoch, batch) == (first + 1, 0)
    )
    seconds = remaining_seconds(
        context.workload,
        epoch,
        batch,
        context.train_rate,
        context.forward_rate,
        validated,
        starts * (context.phase_start_seconds or 0.0),
    )
    return {"eta_seconds": None if seconds is None else round(seconds), "eta_at": now_iso()}


def save_weights_atomic(model: keras.Model, path: Path) -> None:
    """Write ``model``'s weights to ``path`` through a temporary file (never half a file)."""
    atomic_write(path, lambda temporary: model.save_weights(temporary))

"""What a training run is doing and how long it has left, for the run and for its monitor.

The training process records its :class:`Stage` and a time estimate in ``status.json``
(:mod:`cxr_core.training.train`); the app turns that file into one line, a progress fraction and a
count-down (:func:`monitor_view`) without importing TensorFlow, so a reloaded page shows the
last known state at once. Estimates come from measured throughput only: training images per
second over the current epoch, and forward-pass images per second measured on validation;
before the first measurement there is no estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from cxr_core.runs.files import RunState, RunStatus

__all__ = [
    "PHASE_LABELS",
    "MonitorView",
    "Stage",
    "Workload",
    "monitor_view",
    "remaining_seconds",
    "seconds_left",
]

#: How the monitor names the training phases.
PHASE_LABELS = {
    "head": "phase 1 (head)",
    "finetune": "phase 2 (fine-tuning)",
    "scratch": "training",
}
#: Without a measured forward-pass rate, a validation image costs as much as a training image:
#: on the quick runs measured (2 CPU cores, 128 px) tracing and JPEG decoding make validation
#: and the stress suite no faster per image than training (23-39 vs 73 images/s).
FORWARD_SPEEDUP = 1.0


class Stage(StrEnum):
    """The step a run is in, as the monitor words it."""

    LOADING = "loading TensorFlow"
    READING = "reading the images"
    BUILDING = "building the model"
    COMPILING = "compiling the model"
    TRAINING = "training"
    VALIDATING = "validating"
    FINISHING = "finishing"


#: Stages before the first training batch: the monitor says "starting: <stage>".
STARTING_STAGES = frozenset({Stage.LOADING, Stage.READING, Stage.BUILDING})


@dataclass(frozen=True)
class Workload:
    """The work of one run, in images.

    Attributes:
        train_images: Training images per epoch.
        val_images: Validation images scored after every epoch.
        batch_size: Images per training step.
        total_epochs: Epochs of all phases together.
        finish_images: Forward passes after training (stress suite and input-check features).
    """

    train_images: int
    val_images: int
    batch_size: int
    total_epochs: int
    finish_images: int = 0

    @property
    def steps_per_epoch(self) -> int:
        """Training batches per epoch (the last one may be partial)."""
        return max(math.ceil(self.train_images / self.batch_size), 1)


def remaining_seconds(
    work: Workload,
    epoch: int,
    batch: int,
    train_rate: float | None,
    forward_rate: float | None = None,
    validated: float = 0.0,
    overhead: float = 0.0,
) -> float | None:
    """Seconds of training, validation and finishing left, from measured rates.

    Args:
        work: The run's workload.
        epoch: The current epoch, 1-based (``total_epochs + 1`` once training is over).
        batch: Training batches done in the current epoch.
        train_rate: Training images per second; None before the first measurement.
        forward_rate: Forward-pass images per second; default ``FORWARD_SPEEDUP`` times
            ``train_rate``.
        validated: Share (0-1) of the current epoch's validation already done.
        overhead: Seconds to add (e.g. measured phase start-ups still to come).

    Returns:
        The estimate, or None without a training rate.
    """
    if not train_rate:
        return None
    forward = forward_rate or train_rate * FORWARD_SPEEDUP
    epoch = min(max(epoch, 1), work.total_epochs + 1)
    done_in_epoch = min(batch * work.batch_size, work.train_images)
    train_left = max((work.total_epochs - epoch + 1) * work.train_images - done_in_epoch, 0)
    epochs_to_validate = max(work.total_epochs - epoch + 1 - validated, 0.0)
    forward_left = epochs_to_validate * work.val_images + work.finish_images
    return train_left / train_rate + forward_left / forward + overhead


def seconds_left(status: RunStatus, now: datetime | None = None) -> float | None:
    """The run's estimate counted down from when it was written (never below 0); None when
    the run has none."""
    if status.eta_seconds is None:
        return None
    stamp = status.eta_at or status.updated_at
    try:
        written = datetime.fromisoformat(stamp or "")
    except ValueError:
        return status.eta_seconds
    elapsed = ((now or datetime.now(UTC)) - written).total_seconds()
    return max(status.eta_seconds - max(elapsed, 0.0), 0.0)


@dataclass(frozen=True)
class MonitorView:
    """What the monitor shows of one run.

    Attributes:
        headline: e.g. ``"starting: reading the images"``, ``"phase 2 (fine-tuning): epoch 3
            of 5, batch 12 of 19"``, ``"finishing: fitting the input check"``, ``"finished"``.
        fraction: Share of the training done (0-1), or None for a run that is not active.
        seconds_left: The count-down (:func:`seconds_left`), or None without an estimate.
    """

    headline: str
    fraction: float | None = None
    seconds_left: float | None = None


def monitor_view(status: RunStatus, now: datetime | None = None) -> MonitorView:
    """Turn a run's status into its monitor line, progress and count-down.

    A run's state is read as corrected by :func:`cxr_core.runs.jobs.read_run` (a dead process is
    ``failed`` or ``cancelled``); only active runs get a fraction and an estimate.
    """
    if not status.state.active:
        return MonitorView(str(status.state))
    left = seconds_left(status, now)
    stage = _stage(status)
    total = max(status.total_epochs or 1, 1)
    phase = PHASE_LABELS.get(status.phase or "", status.phase or "training")
    if status.state == RunState.STARTING or stage in STARTING_STAGES:
        return MonitorView(f"starting: {stage or Stage.LOADING}", 0.0, left)
    if stage == Stage.FINISHING:
        return MonitorView(f"finishing: {status.message or 'saving the model'}", 1.0, left)
    epoch = min(max(status.epoch, 1), total)
    if stage == Stage.COMPILING:
        return MonitorView(f"{phase}: starting (compiling the model)", (epoch - 1) / total, left)
    if stage == Stage.VALIDATING:
        return MonitorView(f"{phase}: epoch {epoch} of {total}, validating", epoch / total, left)
    batches = max(status.batches_per_epoch or 1, 1)
    batch = min(status.batch, batches)
    fraction = min((epoch - 1 + batch / batches) / total, 1.0)
    line = f"{phase}: epoch {epoch} of {total}, batch {batch} of {batches}"
    return MonitorView(line, fraction, left)


def _stage(status: RunStatus) -> Stage | None:
    """The recorded stage; for files written before stages existed, a guess from the fields."""
    try:
        return Stage(status.stage)
    except ValueError:
        pass
    if status.phase == "finishing":
        return Stage.FINISHING
    if status.state == RunState.PREPARING or not status.batches_per_epoch:
        return Stage.READING
    return Stage.TRAINING

"""status.json is written through named, typed fields and still reads as the old code wrote it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cxr_core.runs.files import (
    RunPaths,
    RunState,
    RunStatus,
    StatusFields,
    read_status,
    update_status,
)

#: A status.json as the training process wrote it before status fields were typed: keys that
#: nothing read (train_metrics, last_metrics, cache, strategy, learning_rate_scale) included.
OLD_STATUS = {
    "state": "running",
    "stage": "training",
    "phase": "head",
    "epoch": 2,
    "batch": 7,
    "batches_per_epoch": 12,
    "images_per_second": 31.4,
    "elapsed_seconds": 95,
    "train_metrics": {"loss": 0.61, "auc": 0.74},
    "last_metrics": {"epoch": 1, "phase": "head", "val_auc": 0.8, "seconds": 40.2},
    "eta_seconds": 240,
    "eta_at": "2026-01-01T10:01:35+00:00",
    "device": "CPU only",
    "strategy": "auto",
    "workers": 1,
    "replicas": 1,
    "mixed_precision": False,
    "xla": False,
    "learning_rate_scale": 1.0,
    "cache": "memory",
    "train_images": 24,
    "val_images": 8,
    "validation": "validation: 8 images from the dataset's own val split",
    "class_weight": {"0": 1.0, "1": 1.0},
    "total_epochs": 4,
    "started_at": "2026-01-01T10:00:00+00:00",
    "updated_at": "2026-01-01T10:01:35+00:00",
    "pid": 4242,
    "process_start": "boot+1",
    "error": None,
    "message": None,
    "phases_done": [],
}


def test_a_misspelt_status_field_raises_and_writes_nothing(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    with pytest.raises(TypeError, match="unknown status fields: epcoh"):
        update_status(paths, state=RunState.RUNNING, epcoh=3)
    assert not paths.status.exists()


@pytest.mark.parametrize("state", ["running", RunState.UNKNOWN, RunState.MISSING])
def test_a_state_that_is_no_written_run_state_raises(tmp_path: Path, state: object) -> None:
    with pytest.raises(TypeError, match="state must be a RunState"):
        update_status(RunPaths(tmp_path), state=state)
    assert not RunPaths(tmp_path).status.exists()


def test_status_fields_are_the_fields_of_run_status_but_updated_at() -> None:
    names = {field.name for field in dataclasses.fields(RunStatus)}
    assert set(StatusFields.__optional_keys__) == names - {"updated_at"}


def test_typed_fields_are_written_and_read_back(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    update_status(paths, state=RunState.RUNNING, epoch=2, workers=2, mixed_precision=True)
    status = read_status(paths)
    assert (status.state, status.epoch, status.workers, status.mixed_precision) == (
        RunState.RUNNING,
        2,
        2,
        True,
    )
    assert status.updated_at is not None


def test_a_status_file_written_by_the_old_code_still_loads_and_updates(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    paths.status.write_text(json.dumps(OLD_STATUS), encoding="utf-8")
    status = read_status(paths)
    assert status.state == RunState.RUNNING and status.epoch == 2 and status.batch == 7
    assert status.class_weight == {"0": 1.0, "1": 1.0} and status.workers == 1
    assert status.xla is False and status.pid == 4242
    update_status(paths, state=RunState.CANCELLED, message="stopped on request")
    again = read_status(paths)
    assert again.state == RunState.CANCELLED and again.epoch == 2

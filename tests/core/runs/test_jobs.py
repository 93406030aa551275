"""Background training runs: start returns at once, one run at a time, cancel, crash detection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cxr_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from cxr_core.errors import JobError
from cxr_core.runs.files import RunPaths, RunState, update_status
from cxr_core.runs.jobs import (
    Run,
    active_run,
    cancel_run,
    list_runs,
    read_run,
    start_run,
    valid_run_name,
)


def job_config(root: Path, epochs: int) -> RunConfig:
    return RunConfig(
        data_root=str(root),
        model=ModelConfig(backbone="small_cnn", weights="none", image_size=32),
        data=DataConfig(batch_size=4, min_val_images=0),
        train=TrainConfig(
            head_epochs=epochs, finetune_epochs=0, early_stopping_patience=50, calibration="none"
        ),
    )


def wait_for(run_dir: Path, states: tuple[str, ...], timeout: float = 180.0) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = read_run(run_dir)
        if run.state in states:
            return run
        time.sleep(0.5)
    raise AssertionError(f"run stayed {read_run(run_dir).state!r}, wanted {states}")


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "x" * 65, ".hidden", "spa ce"])
def test_unsafe_run_names_are_refused(name: str, tmp_path: Path) -> None:
    assert not valid_run_name(name)
    with pytest.raises(JobError, match="run name"):
        start_run(tmp_path, name, job_config(tmp_path, 1))


def test_a_background_run_from_any_working_directory_finishes_and_is_listed(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Started as the app would from anywhere: another working directory, no PYTHONPATH.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    runs = tmp_path / "runs"
    started = time.monotonic()
    run = start_run(runs, "first", job_config(tiny_dataset, 1))
    assert time.monotonic() - started < 5, "start_run must return at once"
    assert run.state in ("starting", "preparing", "running")
    finished = wait_for(runs / "first", ("finished", "failed"))
    assert finished.state == "finished", finished.status.error
    assert finished.history and finished.config.model.backbone == "small_cnn"
    assert [r.name for r in list_runs(runs)] == ["first"]
    assert active_run(runs) is None


def test_second_launch_is_refused_and_cancel_stops_cleanly(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    start_run(tmp_path, "long", job_config(tiny_dataset, 200))
    wait_for(tmp_path / "long", ("running",))
    with pytest.raises(JobError, match="'long' is still training"):
        start_run(tmp_path, "other", job_config(tiny_dataset, 1))
    cancel_run(tmp_path / "long")
    cancelled = wait_for(tmp_path / "long", ("cancelled", "failed", "finished"), timeout=120)
    assert cancelled.state == "cancelled"
    assert not (tmp_path / "other").exists()
    with pytest.raises(JobError, match="not running"):
        cancel_run(tmp_path / "long")


def test_existing_name_is_refused(tiny_dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(JobError, match="already exists"):
        start_run(tmp_path, "taken", job_config(tiny_dataset, 1))


def test_a_dead_process_shows_as_failed(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "ghost")
    paths.root.mkdir()
    paths.config.write_text(json.dumps(job_config(tmp_path, 1).to_dict()))
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    update_status(paths, state=RunState.RUNNING, pid=int(finished.stdout))
    paths.log.write_text("Traceback ...\nMemoryError: out of memory\n")
    run = read_run(paths.root)
    assert run.state == "failed"
    assert "MemoryError" in run.status.error
    assert os.getpid() != int(finished.stdout)


def test_missing_run_reads_as_missing(tmp_path: Path) -> None:
    assert read_run(tmp_path / "nope").state == "missing"
    assert list_runs(tmp_path / "nope") == []


def test_cancel_right_after_launch_ends_cancelled_not_failed(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    start_run(tmp_path, "early", job_config(tiny_dataset, 50))
    cancel_run(tmp_path / "early")
    ended = wait_for(tmp_path / "early", ("cancelled", "failed", "finished"))
    assert ended.state == "cancelled", ended.status.error

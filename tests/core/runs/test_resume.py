"""Resume after the app's Cancel (which leaves a STOP file): from the app and from the CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from cxr_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from cxr_core.runs import jobs
from cxr_core.runs.files import RunPaths, read_history

ROOT = Path(__file__).resolve().parents[3]


def slow_config(root: Path, epochs: int) -> RunConfig:
    return RunConfig(
        data_root=str(root),
        model=ModelConfig(backbone="small_cnn", weights="none", image_size=32),
        data=DataConfig(batch_size=2, min_val_images=0, augment=0.0, acquisition_augment=0.0),
        train=TrainConfig(
            head_epochs=epochs,
            finetune_epochs=0,
            early_stopping_patience=50,
            input_gate=False,
            calibration="none",
        ),
    )


def wait_for(run_dir: Path, states: tuple[str, ...], timeout: float = 180.0) -> jobs.Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = jobs.read_run(run_dir)
        if run.state in states:
            return run
        time.sleep(0.3)
    raise AssertionError(f"run stayed {jobs.read_run(run_dir).state!r}, wanted {states}")


def cancel_in_the_app(tmp_path: Path, tiny_dataset: Path, name: str) -> RunPaths:
    """Start a run as the Train page does and press its Cancel once an epoch is recorded."""
    jobs.start_run(tmp_path, name, slow_config(tiny_dataset, epochs=3))
    paths = RunPaths(tmp_path / name)
    deadline = time.monotonic() + 180
    while not read_history(paths) and time.monotonic() < deadline:
        time.sleep(0.3)
    jobs.cancel_run(paths.root)
    assert wait_for(paths.root, ("cancelled", "failed", "finished")).state == "cancelled"
    assert paths.stop_file.exists(), "the app's cancel leaves a STOP file (the case to test)"
    time.sleep(0.05)  # the resumed process starts after the STOP file was written
    return paths


def test_resume_in_the_app_after_cancel_trains_to_the_end(tiny_dataset, tmp_path) -> None:
    paths = cancel_in_the_app(tmp_path, tiny_dataset, "app")
    done = len(read_history(paths))
    jobs.resume_run(paths.root)
    ended = wait_for(paths.root, ("cancelled", "failed", "finished"))
    assert ended.state == "finished", ended.status.error or ended.status.message
    assert [row.epoch for row in read_history(paths)] == [1, 2, 3]
    assert done < 3 and paths.model.exists()
    assert not paths.stop_file.exists()


def test_resume_on_the_command_line_after_the_apps_cancel(tiny_dataset, tmp_path) -> None:
    paths = cancel_in_the_app(tmp_path, tiny_dataset, "cli")
    finished = subprocess.run(
        [sys.executable, "-m", "cxr_core", "train", "--out", str(paths.root), "--resume"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    run = jobs.read_run(paths.root)
    assert run.state == "finished", (run.status.message, finished.stdout[-1000:])
    assert [row.epoch for row in read_history(paths)] == [1, 2, 3]
    assert paths.model.exists()

"""Fault injection into training processes: PIDs that now belong to strangers, two trainers on
one folder, simultaneous launches, SIGTERM at any moment, a cancel in the middle of an epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cxr_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from cxr_core.errors import JobError, RunInUseError
from cxr_core.runs import jobs
from cxr_core.runs.files import (
    RunPaths,
    RunState,
    read_history,
    read_status,
    update_status,
    write_json_atomic,
)
from cxr_core.runs.guard import StopRequest, lock_run, process_start, unlock_run
from cxr_core.training.train import train_run

ROOT = Path(__file__).resolve().parents[3]


def config(root: Path, epochs: int = 1, batch_size: int = 4) -> RunConfig:
    return RunConfig(
        data_root=str(root),
        model=ModelConfig(backbone="small_cnn", weights="none", image_size=32),
        data=DataConfig(
            batch_size=batch_size, min_val_images=0, augment=0.0, acquisition_augment=0.0
        ),
        train=TrainConfig(
            head_epochs=epochs, finetune_epochs=0, early_stopping_patience=50, input_gate=False
        ),
    )


@pytest.fixture
def stranger():
    """An unrelated process (``sleep``) that must never be signalled."""
    process = subprocess.Popen(["sleep", "120"])
    yield process
    process.kill()
    process.wait()


def fake_run(runs: Path, name: str, data_root: Path, **status) -> RunPaths:
    paths = RunPaths(runs / name)
    paths.root.mkdir(parents=True)
    write_json_atomic(paths.config, config(data_root).to_dict())
    if "state" in status:
        status["state"] = RunState(status["state"])
    update_status(paths, started_at="2026-01-01T10:00:00+00:00", **status)
    return paths


@pytest.mark.parametrize("state", ["running", "preparing", "starting"])
def test_a_recycled_pid_neither_looks_alive_nor_gets_signalled(
    tmp_path: Path, tiny_dataset: Path, stranger, state: str
) -> None:
    # The run recorded its own process's start time; the PID now belongs to `sleep`.
    fake_run(tmp_path, "ghost", tiny_dataset, state=state, pid=stranger.pid, process_start="boot+1")
    run = jobs.read_run(tmp_path / "ghost")
    assert run.state == "failed" and not run.active
    assert jobs.active_run(tmp_path) is None  # launches are not blocked
    with pytest.raises(JobError, match="not running"):
        jobs.cancel_run(tmp_path / "ghost")
    time.sleep(0.2)
    assert stranger.poll() is None, "the unrelated process was signalled"


def test_a_status_without_identity_is_never_signalled(tmp_path, tiny_dataset, stranger) -> None:
    # Written by an older version: a PID alone proves nothing.
    fake_run(tmp_path, "old", tiny_dataset, state="running", pid=stranger.pid)
    assert jobs.read_run(tmp_path / "old").state == "failed"
    with pytest.raises(JobError):
        jobs.cancel_run(tmp_path / "old")
    assert stranger.poll() is None


def test_a_second_trainer_on_a_locked_folder_exits_2_naming_the_holder(
    tmp_path: Path, tiny_dataset: Path
) -> None:
    run = tmp_path / "busy"
    lock_run(run)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cxr_core", "train", "--data", str(tiny_dataset)]
            + ["--backbone", "small_cnn", "--weights", "none", "--out", str(run)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        unlock_run(run)
    assert done.returncode == 2
    assert done.stderr == f"error: run busy is in use by process {os.getpid()}\n"
    assert not (run / "status.json").exists() and not (run / "config.json").exists()


def test_two_trainers_on_one_folder_one_runs_one_is_refused(tiny_dataset, tmp_path) -> None:
    run = tmp_path / "shared"
    command = [sys.executable, "-m", "cxr_core", "train", "--data", str(tiny_dataset)]
    command += ["--backbone", "small_cnn", "--weights", "none", "--image-size", "32"]
    command += ["--epochs", "1", "--batch-size", "4", "--no-input-gate", "--calibration", "none"]
    command += ["--threshold-scores", "clean", "--out", str(run)]
    first, second = (
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    )
    results = [(p.wait(timeout=300), p.stderr.read().decode()) for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert refused.startswith("error: run shared is in use by process ")
    assert [row.epoch for row in read_history(RunPaths(run))] == [1]
    lines = RunPaths(run).history.read_text().splitlines()
    assert len(lines) == 1, "one trainer only wrote the history"


def test_simultaneous_launches_start_exactly_one_run(tiny_dataset: Path, tmp_path: Path) -> None:
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def launch(index: int) -> None:
        barrier.wait()
        try:
            jobs.start_run(tmp_path, f"run{index}", config(tiny_dataset, epochs=200))
            outcomes.append("started")
        except JobError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=launch, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcomes.count("started") == 1, outcomes
    assert all("still training" in o for o in outcomes if o != "started")
    active = jobs.active_run(tmp_path)
    jobs.cancel_run(active.path)
    assert wait_until_inactive(active.path, 30).state == "cancelled"


def wait_until_inactive(run_dir: Path, seconds: float) -> jobs.Run:
    deadline = time.monotonic() + seconds
    while (run := jobs.read_run(run_dir)).active:
        assert time.monotonic() < deadline, f"still {run.state} after {seconds} s"
        time.sleep(0.2)
    return run


def start_cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cxr_core", "train", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("delay", [0.3, 1.2])
def test_sigterm_early_in_a_new_run_cancels_it_within_seconds(tiny_dataset, tmp_path, delay):
    run = tmp_path / "early"
    process = start_cli(
        ["--data", str(tiny_dataset), "--backbone", "small_cnn", "--weights", "none"]
        + ["--image-size", "32", "--epochs", "50", "--batch-size", "4", "--out", str(run)]
    )
    time.sleep(delay)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    took = time.monotonic() - sent
    assert process.returncode == 0, err[-2000:]
    assert took < 6, f"cancel took {took:.1f} s"
    assert read_status(RunPaths(run)).state == "cancelled"
    assert not (run / "model.keras").exists()
    assert f"continue with: python -m cxr_core train --out {run} --resume" in out


def test_sigterm_early_in_a_resumed_run_cancels_it(tiny_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "again"
    paths = RunPaths(run)
    run.mkdir()
    write_json_atomic(paths.config, config(tiny_dataset, epochs=50).to_dict())
    update_status(paths, state=RunState.CANCELLED)
    paths.stop_file.touch()  # left by the cancel that stopped the last attempt
    os.utime(paths.stop_file, (time.time() - 60, time.time() - 60))
    process = start_cli(["--out", str(run), "--resume"])
    time.sleep(1.0)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert time.monotonic() - sent < 6
    assert read_status(paths).state == "cancelled"
    assert not paths.model.exists()


def test_a_cancel_right_after_launch_ends_within_seconds(tiny_dataset, tmp_path) -> None:
    jobs.start_run(tmp_path, "quick", config(tiny_dataset, epochs=50))
    sent = time.monotonic()
    jobs.cancel_run(tmp_path / "quick")
    ended = wait_until_inactive(tmp_path / "quick", 30)
    assert ended.state == "cancelled", ended.status.error
    assert time.monotonic() - sent < 6


class StopAfterBatches(StopRequest):
    """A stop request that turns true after ``n`` batch checks (a cancel mid-epoch)."""

    def __init__(self, stop_file: Path, n: int) -> None:
        super().__init__(stop_file)
        self.n, self.checks, self.checks_after = n, 0, 0

    def check(self) -> None:
        self.checks += 1
        if self.checks > self.n:
            self.checks_after += 1
            self.signalled = True
        super().check()


def test_a_cancel_mid_epoch_records_no_part_epoch_and_resume_reruns_it(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    run = tmp_path / "mid"
    paths = RunPaths(run)
    per_epoch = 12 + 4  # batch 2: 12 training and 4 validation batches per epoch
    stop = StopAfterBatches(paths.stop_file, n=per_epoch + 3)  # in epoch 2, after 3 batches
    result = train_run(run, config(tiny_dataset, epochs=3, batch_size=2), stop=stop)
    assert result.state == "cancelled"
    assert stop.checks_after == 1, "training went on (validation ran) after the request"
    assert [row.epoch for row in read_history(paths)] == [1]
    status = read_status(paths)
    assert status.state == "cancelled" and f"--out {run} --resume" in status.message
    # The resumed attempt runs all of epoch 2 again, then is cancelled early in epoch 3.
    again = StopAfterBatches(paths.stop_file, n=per_epoch + 2)
    assert train_run(run, resume=True, stop=again).state == "cancelled"
    assert [row.epoch for row in read_history(paths)] == [1, 2]
    assert again.checks_after == 1


def test_library_training_refuses_a_folder_another_process_trains_in(tiny_dataset, tmp_path):
    run = tmp_path / "taken"
    script = (
        "import sys, time;"
        "from pathlib import Path; from cxr_core.runs.guard import lock_run;"
        "lock_run(Path(sys.argv[1])); print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(run), str(ROOT)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunInUseError, match=f"in use by process {holder.pid}"):
            train_run(run, config(tiny_dataset))
        assert jobs.read_run(run).state != "running"
    finally:
        holder.kill()
        holder.wait()
    assert process_start(holder.pid) is None


def test_status_records_the_process_identity(tiny_dataset: Path, tmp_path: Path) -> None:
    run = jobs.start_run(tmp_path, "who", config(tiny_dataset, epochs=50))
    status = run.status
    assert status.pid and status.process_start == process_start(status.pid)
    jobs.cancel_run(run.path)
    wait_until_inactive(run.path, 30)
    assert json.loads(RunPaths(run.path).status.read_text())["state"] == "cancelled"

"""The administrator password's attempt limit is global: sessions and threads share it."""

from __future__ import annotations

import logging
import threading

from cxr_core.runs.policy import SignInLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_wrong_passwords_back_off_then_lock_out_and_are_logged(caplog):
    clock = FakeClock()
    limiter = SignInLimiter(free_failures=2, lockout_failures=6, lockout_seconds=600, clock=clock)
    checked = []

    def wrong() -> bool:
        checked.append(clock.now)
        return False

    caplog.set_level(logging.WARNING, logger="cxr.access")
    assert not limiter.attempt(wrong).accepted  # 1: free
    assert not limiter.attempt(wrong).accepted  # 2: free, the next must wait 1 s
    paused = limiter.attempt(wrong)
    assert paused.wait_seconds == 1.0 and len(checked) == 2  # refused unchecked
    clock.now += 1.0
    limiter.attempt(wrong)  # 3: the next waits 2 s
    assert limiter.attempt(wrong).wait_seconds == 2.0
    for _ in range(3):  # 4, 5, 6: the sixth locks sign-in
        clock.now += 60
        limiter.attempt(wrong)
    locked = limiter.attempt(lambda: True)  # even the right password waits
    assert not locked.accepted and locked.wait_seconds == 600
    clock.now += 600
    assert limiter.attempt(lambda: True).accepted
    assert sum("wrong administrator password" in r.message for r in caplog.records) == 6
    assert any("locked for 600 s" in r.message for r in caplog.records)


def test_parallel_sessions_share_one_limit():
    limiter = SignInLimiter(free_failures=3, base_delay=30.0)
    checked = []
    lock = threading.Lock()

    def wrong() -> bool:
        with lock:
            checked.append(1)
        return False

    def session() -> None:
        for _ in range(10):
            limiter.attempt(wrong)

    threads = [threading.Thread(target=session) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 80 tries from 8 sessions: only the free ones were checked; the rest wait 30 s.
    assert len(checked) == 3
    assert not limiter.attempt(lambda: True).accepted


def test_a_right_password_resets_the_count():
    clock = FakeClock()
    limiter = SignInLimiter(free_failures=1, clock=clock)
    limiter.attempt(lambda: False)
    clock.now += 1.0
    assert limiter.attempt(lambda: True).accepted
    assert limiter.attempt(lambda: False).wait_seconds == 0


def test_the_work_queue_runs_one_job_per_visitor_and_bounds_the_wait():
    import pytest

    from cxr_core.errors import JobError
    from cxr_core.runs.policy import WorkQueue

    queue = WorkQueue(slots=1, wait_seconds=0.05)
    with queue.job("visitor-a"):
        with (
            pytest.raises(JobError, match="previous evaluation is still running"),
            queue.job("visitor-a"),
        ):
            pass
        with pytest.raises(JobError, match="busy scoring for others"), queue.job("visitor-b"):
            pass
    with queue.job("visitor-b"):  # the slot and the holder were released
        pass


def make_visitor_run(root, name: str, size: int, age_seconds: float):
    import os
    import time

    from cxr_core.runs.policy import mark_visitor_run

    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(bytes(size))
    mark_visitor_run(folder)
    stamp = time.time() - age_seconds
    os.utime(folder / ".visitor", (stamp, stamp))
    return folder


def test_the_visitor_quota_counts_runs_per_hour_and_disk(tmp_path):
    import pytest

    from cxr_core.errors import JobError
    from cxr_core.runs.policy import TrainingQuota

    quota = TrainingQuota(runs_per_hour=2, disk_mb=1)
    quota.check(tmp_path)  # nothing yet
    make_visitor_run(tmp_path, "old", 1000, age_seconds=7200)
    make_visitor_run(tmp_path, "new", 1000, age_seconds=60)
    quota.check(tmp_path)  # one run in the last hour
    make_visitor_run(tmp_path, "newer", 1000, age_seconds=10)
    with pytest.raises(JobError, match="2 runs an hour"):
        quota.check(tmp_path)
    make_visitor_run(tmp_path / "more", "big", 2 * 2**20, age_seconds=7200)
    with pytest.raises(JobError, match="MiB of the 1 MiB allowed"):
        TrainingQuota(runs_per_hour=9, disk_mb=1).check(tmp_path / "more")
    (tmp_path / "admin-run").mkdir()  # not a visitor's: never counted nor removed


def test_old_stopped_visitor_runs_are_cleaned_up(tmp_path):
    from cxr_core.runs.policy import clean_visitor_runs

    make_visitor_run(tmp_path, "old", 10, age_seconds=30 * 3600)
    make_visitor_run(tmp_path, "old-active", 10, age_seconds=30 * 3600)
    make_visitor_run(tmp_path, "recent", 10, age_seconds=3600)
    (tmp_path / "admin-run").mkdir()
    removed = clean_visitor_runs(tmp_path, 24, lambda folder: folder.name == "old-active")
    assert removed == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["admin-run", "old-active", "recent"]


def test_quota_settings_must_be_positive_numbers():
    import pytest

    from cxr_core.errors import ConfigError
    from cxr_core.runs.policy import TrainingQuota

    assert TrainingQuota.from_settings({}) == TrainingQuota(3, 500, 24.0)
    with pytest.raises(ConfigError, match="CXR_VISITOR_DISK_MB"):
        TrainingQuota.from_settings({"CXR_VISITOR_DISK_MB": "-5"})

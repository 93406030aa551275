"""The administrator password's attempt limit is global: sessions and threads share it."""

from __future__ import annotations

import logging
import threading

from cxr_core.policy import SignInLimiter


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

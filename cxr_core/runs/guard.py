"""One run folder, one training process; stopped within seconds; no stranger ever signalled.

- **Process identity.** A PID alone is not a process: once the training process is gone, the
  system may give its number to anything else. :func:`process_start` returns a token of when a
  process started (``/proc/<pid>/stat`` field 22 on Linux, ``ps -o lstart`` elsewhere); a run
  records its PID with that token and :func:`process_matches` checks both before the app shows
  "running" or sends a signal.
- **Folder lock.** The training process holds an exclusive ``flock`` on ``<run>/.lock`` for its
  whole life (:func:`lock_run`); the OS releases it when the process dies, however it dies. A
  second ``train --out`` on the same folder gets :class:`RunInUseError` naming the holder, and
  :func:`lock_held` tells readers whether a live process owns the folder.
- **Launch lock.** :func:`launch_lock` serialises "is a run active? then start one" across
  threads and processes, so simultaneous launches start one run, not six.
- **Stopping.** :class:`StopRequest` turns SIGTERM or a ``STOP`` file into a request that
  training honours at its next batch (training or validation). Its watchdog
  (:meth:`StopRequest.start_watchdog`) ends the process itself, with state ``cancelled``,
  when the request is not honoured within a few seconds (importing TensorFlow, a long
  validation or stress pass); writes that must not be cut short hold
  :data:`cxr_core.runs.files.status_lock`, which the watchdog takes before it ends the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cxr_core.errors import JobError, RunInUseError
from cxr_core.io import read_regular_bytes
from cxr_core.runs.files import status_lock

__all__ = [
    "RunLock",
    "StopRequest",
    "StopRequested",
    "launch_lock",
    "lock_held",
    "lock_run",
    "process_matches",
    "process_start",
    "process_started_at",
    "unlock_run",
]

#: Seconds a stop request may wait for training to honour it before the watchdog ends it.
STOP_GRACE_SECONDS = 3.0


def process_start(pid: int | None) -> str | None:
    """A token of when process ``pid`` started, or None if there is no such live process."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if Path("/proc/self/stat").exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        # fields[0] is the state (field 3 of proc(5)); fields[19] is starttime (field 22).
        return None if fields[0] in ("Z", "X") else f"boot+{fields[19]}"
    try:  # macOS and other systems without /proc
        done = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    started = done.stdout.strip()
    return f"lstart {started}" if done.returncode == 0 and started else None


def process_started_at() -> float:
    """Wall-clock time at which this process started (Linux, to about 10 ms), else now.

    Counted back from ``/proc/uptime`` (hundredths of a second) rather than forward from
    ``/proc/stat``'s ``btime``, which is truncated to the second: a STOP file written a moment
    before a resumed process started must read as older than it (:meth:`StopRequest.clear_stale`).
    """
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        now = time.time()
        ticks = float(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        return now - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


def process_matches(pid: int | None, token: str | None) -> bool:
    """Whether ``pid`` is still the process that ``token`` was recorded for."""
    return token is not None and process_start(pid) == token


class RunLock:
    """An exclusive ``flock`` on a run folder's ``.lock`` file, with the holder's PID inside.

    Args:
        path: The lock file (``RunPaths.lock``); its folder must exist.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, wait: float = 2.0) -> None:
        """Take the lock, retrying for ``wait`` seconds (a reader may probe it briefly).

        Raises:
            RunInUseError: Another process holds it; the message names that process.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _flock_within(fd, wait, poll=0.05):
            os.close(fd)
            holder = lock_holder(self.path)
            who = f"process {holder}" if holder else "another process"
            raise RunInUseError(f"run {self.path.parent.name} is in use by {who}")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Give the lock back (dying does the same)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _flock_within(fd: int, wait: float, poll: float) -> bool:
    """Take an exclusive ``flock`` on ``fd``, retrying every ``poll`` s for ``wait`` s."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)


_held_locks: dict[Path, RunLock] = {}


def lock_run(root: Path, wait: float = 2.0) -> RunLock:
    """Lock the run folder ``root`` for this process (creating the folder); re-entrant.

    Raises:
        RunInUseError: Another process holds the folder.
    """
    root.mkdir(parents=True, exist_ok=True)
    key = root.resolve()
    lock = _held_locks.get(key)
    if lock is None or not lock.held:
        lock = RunLock(key / ".lock")
        lock.acquire(wait)
        _held_locks[key] = lock
    return lock


def unlock_run(root: Path) -> None:
    """Release this process's lock on ``root``, if it holds one."""
    lock = _held_locks.pop(root.resolve(), None)
    if lock is not None:
        lock.release()


def lock_holder(path: Path) -> int | None:
    """The PID written into a lock file by its last holder, or None."""
    try:
        text = read_regular_bytes(path, 64, JobError).decode("ascii").strip()
    except (OSError, UnicodeDecodeError, JobError):
        return None
    return int(text) if text.isdigit() else None


def lock_held(path: Path) -> bool:
    """Whether some live process holds the lock file ``path`` (never creates it)."""
    key = path.parent.resolve() if path.parent.exists() else None
    if key is not None and key in _held_locks and _held_locks[key].held:
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def launch_lock(runs_root: Path, wait: float = 30.0) -> Iterator[None]:
    """Hold ``runs_root/.launch.lock`` while checking for an active run and starting one.

    Raises:
        JobError: Another launch held it for more than ``wait`` seconds.
    """
    runs_root.mkdir(parents=True, exist_ok=True)
    fd = os.open(runs_root / ".launch.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _flock_within(fd, wait, poll=0.02):
            raise JobError("another launch is in progress; try again")
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class StopRequested(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside training to leave ``model.fit`` at once when a stop was asked for."""


class StopRequest:
    """A stop asked for by SIGTERM or by a ``STOP`` file in the run folder.

    Args:
        stop_file: The run's ``STOP`` file.
        since: Wall-clock time (``time.time()``) this process started; a ``STOP`` file older
            than that is the leftover of an earlier attempt, which :meth:`clear_stale` removes.
    """

    def __init__(self, stop_file: Path, since: float | None = None) -> None:
        self.stop_file = stop_file
        self.since = time.time() if since is None else since
        self.signalled = False
        self._disarmed = False

    def __call__(self, *_: Any) -> None:
        self.signalled = True

    @property
    def requested(self) -> bool:
        """Whether training should stop now."""
        return self.signalled or self.stop_file.exists()

    def check(self) -> None:
        """Raise :class:`StopRequested` if a stop was asked for."""
        if self.requested:
            raise StopRequested

    def install(self) -> None:
        """Handle SIGTERM (main thread only) and let a SIGTERM blocked at start through."""
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self)
        if hasattr(signal, "pthread_sigmask"):
            # A launcher starts training with SIGTERM blocked so that none is lost before
            # this handler exists; a pending one is delivered here.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    def clear_stale(self) -> None:
        """Remove a ``STOP`` file written before this process started (a past attempt's)."""
        with contextlib.suppress(OSError):
            if self.stop_file.stat().st_mtime < self.since:
                self.stop_file.unlink()

    def disarm(self) -> None:
        """The run has ended: the watchdog must no longer act (call holding ``status_lock``)."""
        self._disarmed = True

    def start_watchdog(
        self, on_timeout: Callable[[], None], grace: float = STOP_GRACE_SECONDS
    ) -> threading.Thread:
        """End the process with ``on_timeout()`` then ``os._exit(0)`` when a stop request is
        not honoured within ``grace`` seconds. For command-line processes only."""

        def watch() -> None:
            first_seen = None
            while True:
                time.sleep(0.2)
                if not self.requested:
                    continue
                first_seen = first_seen or time.monotonic()
                if time.monotonic() - first_seen < grace:
                    continue
                with status_lock:
                    if self._disarmed:
                        return
                    try:
                        on_timeout()
                    finally:
                        sys.stdout.flush()
                        os._exit(0)

        thread = threading.Thread(target=watch, name="cxr-stop-watchdog", daemon=True)
        thread.start()
        return thread

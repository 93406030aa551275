"""Background training runs: start, watch, cancel, resume and list them.

A run is a separate ``python -m cxr_core train`` process in its own session, so the app that
started it never blocks and the run survives page reloads. Everything the app shows comes from
the run folder's files, read once into a typed :class:`Run` (see :mod:`cxr_core.runs.files`); a run
whose files are wrongly shaped reads as ``unreadable`` with the reason, and the others are
unaffected. Only one run may be active at a time, and :func:`start_run` checks that and starts
the process atomically (:func:`cxr_core.runs.guard.launch_lock`). A run counts as alive only
while its process holds the folder lock, or, while it is starting, while its recorded PID and
process start time still match; nothing else is ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from cxr_core.config import RunConfig
from cxr_core.errors import ConfigError, JobError, RunFileError
from cxr_core.io import read_regular_bytes
from cxr_core.runs.files import (
    ACTIVE_STATES,
    HistoryRow,
    RunPaths,
    RunState,
    RunStatus,
    now_iso,
    read_config,
    read_history,
    read_status,
    update_status,
    write_json_atomic,
)
from cxr_core.runs.guard import launch_lock, lock_held, process_matches, process_start
from cxr_core.runs.progress import Stage

__all__ = [
    "ACTIVE_STATES",
    "Run",
    "active_run",
    "cancel_run",
    "list_runs",
    "read_run",
    "resume_run",
    "start_run",
    "valid_run_name",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Run:
    """One run folder as the app shows it.

    Attributes:
        name: The folder name.
        path: The folder.
        status: Its checked ``status.json`` (state corrected when the process is gone).
        config: Its configuration, or None when unreadable.
        history: One row per finished epoch.
        problem: Why the run's files cannot be read (then ``state`` is ``unreadable``).
    """

    name: str
    path: Path
    status: RunStatus = field(default_factory=RunStatus)
    config: RunConfig | None = None
    history: tuple[HistoryRow, ...] = ()
    problem: str | None = None

    @property
    def state(self) -> RunState:
        """The run's state; ``unreadable`` when :attr:`problem` is set."""
        return RunState.UNREADABLE if self.problem else self.status.state

    @property
    def active(self) -> bool:
        """Whether its process is alive (or starting)."""
        return self.state.active

    @property
    def resume_command(self) -> str:
        """The command line that continues this run."""
        return f"python -m cxr_core train --out {self.path} --resume"


def valid_run_name(name: str) -> bool:
    """Whether ``name`` is a safe run folder name (letters, digits, ``.``, ``_``, ``-``)."""
    return bool(_NAME.match(name)) and ".." not in name


def _alive(paths: RunPaths, status: RunStatus) -> bool:
    if lock_held(paths.lock):
        return True
    if status.state != RunState.STARTING:
        return False  # preparing and running processes hold the folder lock
    if status.pid is None:  # a launcher between writing "starting" and the PID
        return _seconds_since(status.updated_at) < 30
    return process_matches(status.pid, status.process_start)


def _seconds_since(stamp: str | None) -> float:
    try:
        return (datetime.now(UTC) - datetime.fromisoformat(stamp or "")).total_seconds()
    except (TypeError, ValueError):
        return float("inf")


def read_run(run_dir: str | Path) -> Run:
    """Read a run folder into a :class:`Run`; never raises for a bad file.

    A run marked active whose process is gone becomes ``cancelled`` if a stop was asked for
    (it may have died of the SIGTERM), else ``failed`` with the last line of its log.
    """
    paths = RunPaths(Path(run_dir))
    if not paths.root.is_dir():
        return Run(paths.root.name, paths.root, RunStatus(RunState.MISSING))
    try:
        status = read_status(paths)
        config = read_config(paths)
        history = tuple(read_history(paths))
    except (RunFileError, ConfigError) as error:
        return Run(paths.root.name, paths.root, problem=str(error))
    if status.state.active and not _alive(paths, status):
        if paths.stop_file.exists():
            status = replace(status, state=RunState.CANCELLED, message="stopped on request")
        else:
            reason = status.error or _last_log_line(paths) or "the process ended"
            status = replace(status, state=RunState.FAILED, error=reason)
    return Run(paths.root.name, paths.root, status, config, history)


#: Bytes read from the end of a run's log to find its last line.
_LOG_TAIL_BYTES = 64 * 1024


def _last_log_line(paths: RunPaths) -> str:
    """The log's last line, from its last 64 KiB only (a FIFO or device is never opened)."""
    try:
        data = read_regular_bytes(paths.log, _LOG_TAIL_BYTES, RunFileError, tail=True)
    except (OSError, RunFileError):
        return ""
    lines = data.decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1][:300] if lines else ""


def list_runs(runs_root: str | Path) -> list[Run]:
    """Return every run under ``runs_root`` (folders with a ``config.json``), newest first."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    runs = [read_run(folder) for folder in root.iterdir() if (folder / "config.json").is_file()]
    return sorted(runs, key=lambda run: (run.status.started_at or "", run.name), reverse=True)


def active_run(runs_root: str | Path) -> Run | None:
    """Return the run that is still in progress under ``runs_root``, if any."""
    return next((run for run in list_runs(runs_root) if run.active), None)


def start_run(runs_root: str | Path, name: str, config: RunConfig) -> Run:
    """Start training ``config`` in ``runs_root/name`` in a background process.

    Returns at once with the new run. The check that no run is active and the start happen
    under one lock, so simultaneous calls start one run.

    Raises:
        JobError: Another run is active, the name is invalid or taken, or the process
            cannot start.
    """
    if not valid_run_name(name):
        raise JobError(
            f"run name must be 1-64 letters, digits, '.', '_' or '-'. Received: name={name!r}"
        )
    root = Path(runs_root)
    with launch_lock(root):
        _refuse_if_busy(root)
        paths = RunPaths(root / name)
        if paths.root.exists():
            raise JobError(f"a run named '{name}' already exists; choose another name")
        paths.root.mkdir(parents=True)
        write_json_atomic(paths.config, config.to_dict())
        _launch(paths, resume=False)
    return read_run(paths.root)


def resume_run(run_dir: str | Path) -> Run:
    """Continue a cancelled or failed run in a background process (``train --resume``).

    Raises:
        JobError: Another run is active, or this one cannot be resumed.
    """
    paths = RunPaths(Path(run_dir))
    with launch_lock(paths.root.parent):
        run = read_run(paths.root)
        if run.state not in (RunState.CANCELLED, RunState.FAILED):
            raise JobError(f"run '{run.name}' is {run.state}; only a stopped run can resume")
        _refuse_if_busy(paths.root.parent)
        _launch(paths, resume=True)
    return read_run(paths.root)


def _refuse_if_busy(runs_root: Path) -> None:
    busy = active_run(runs_root)
    if busy is not None:
        raise JobError(f"run '{busy.name}' is still training; cancel it or wait for it")


def _launch(paths: RunPaths, resume: bool) -> None:
    command = [sys.executable, "-m", "cxr_core", "train", "--out", str(paths.root)]
    command += ["--resume"] if resume else ["--config", str(paths.config)]
    if resume:
        # The request that stopped the last attempt; the new process must not read it as its own.
        paths.stop_file.unlink(missing_ok=True)
    # Written before the process starts, so the child's own status updates always come later;
    # a resumed run's last progress, estimate and message would be stale now.
    # A resumed run keeps the time it first started ("started" in the table of past runs).
    first_start = {} if resume and read_status(paths).started_at else {"started_at": now_iso()}
    update_status(
        paths,
        state=RunState.STARTING,
        stage=Stage.LOADING,
        **first_start,
        error=None,
        message=None,
        pid=None,
        batch=0,
        images_per_second=None,
        eta_seconds=None,
    )
    try:
        with open(paths.log, "ab") as log, _sigterm_blocked():
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=_child_environment(),
            )
    except OSError as error:
        update_status(paths, state=RunState.FAILED, error=f"could not start: {error}")
        raise JobError(f"could not start training: {error}") from None
    update_status(paths, pid=process.pid, process_start=process_start(process.pid))


@contextlib.contextmanager
def _sigterm_blocked():
    """Start the child with SIGTERM blocked (the mask is inherited); it unblocks it once its
    handler is installed, so a cancel in its first milliseconds is not lost."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _child_environment() -> dict[str, str]:
    """The app's environment, with this package importable wherever the app was started."""
    package_parent = str(Path(__file__).resolve().parents[2])  # the folder holding cxr_core
    path = os.environ.get("PYTHONPATH", "")
    python_path = os.pathsep.join(p for p in (package_parent, path) if p)
    return {**os.environ, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"}


def cancel_run(run_dir: str | Path) -> None:
    """Ask a run to stop cleanly: a STOP file, then SIGTERM to its own process.

    The signal goes only to the process whose PID and start time the run recorded; the run
    ends within seconds with state ``cancelled`` and can be resumed.

    Raises:
        JobError: The run is not active.
    """
    run = read_run(run_dir)
    if not run.active:
        raise JobError(f"run '{run.name}' is not running")
    RunPaths(run.path).stop_file.touch()
    status = run.status
    if process_matches(status.pid, status.process_start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(status.pid, signal.SIGTERM)

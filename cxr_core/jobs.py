"""Background training runs: start, watch, cancel and list them.

A run is a separate ``python -m cxr_core train`` process in its own session, so the app that
started it never blocks and the run survives page reloads. Everything the app shows comes from
the run folder's files (see :mod:`cxr_core.runs`); only one run may be active at a time.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import JobError
from .runs import RunPaths, now_iso, read_history, read_json, update_status, write_json_atomic

__all__ = [
    "ACTIVE_STATES",
    "active_run",
    "cancel_run",
    "list_runs",
    "read_run",
    "start_run",
    "valid_run_name",
]

ACTIVE_STATES = ("starting", "preparing", "running")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def valid_run_name(name: str) -> bool:
    """Whether ``name`` is a safe run folder name (letters, digits, ``.``, ``_``, ``-``)."""
    return bool(_NAME.match(name)) and ".." not in name


def _process_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust os.kill
    return state != "Z"


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """Return a run's status, with ``state`` corrected to ``failed`` if its process died.

    Returns:
        The ``status.json`` fields plus ``name``, ``path``, ``config`` and ``history`` (a list of
        per-epoch dicts). A missing folder gives ``state`` ``"missing"``.
    """
    paths = RunPaths(Path(run_dir))
    status = read_json(paths.status)
    if not paths.root.is_dir():
        status["state"] = "missing"
    elif status.get("state") in ACTIVE_STATES and not _process_alive(status.get("pid")):
        status["state"] = "failed"
        status["error"] = status.get("error") or _last_log_line(paths) or "the process ended"
    status.setdefault("state", "unknown")
    status.update(
        name=paths.root.name,
        path=str(paths.root),
        config=read_json(paths.config),
        history=read_history(paths),
    )
    return status


def _last_log_line(paths: RunPaths) -> str:
    try:
        lines = paths.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def list_runs(runs_root: str | Path) -> list[dict[str, Any]]:
    """Return every run under ``runs_root``, newest first (see :func:`read_run`)."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    runs = [read_run(folder) for folder in root.iterdir() if (folder / "config.json").is_file()]
    return sorted(runs, key=lambda run: run.get("started_at") or "", reverse=True)


def active_run(runs_root: str | Path) -> dict[str, Any] | None:
    """Return the run that is still in progress under ``runs_root``, if any."""
    for run in list_runs(runs_root):
        if run["state"] in ACTIVE_STATES:
            return run
    return None


def start_run(runs_root: str | Path, name: str, config: RunConfig) -> dict[str, Any]:
    """Start training ``config`` in ``runs_root/name`` in a background process.

    Returns at once with the new run's status.

    Raises:
        JobError: Another run is active, the name is invalid or taken, or the process
            cannot start.
    """
    if not valid_run_name(name):
        raise JobError(
            f"run name must be 1-64 letters, digits, '.', '_' or '-'. Received: name={name!r}"
        )
    busy = active_run(runs_root)
    if busy is not None:
        raise JobError(f"run '{busy['name']}' is still training; cancel it or wait for it")
    paths = RunPaths(Path(runs_root) / name)
    if paths.root.exists():
        raise JobError(f"a run named '{name}' already exists; choose another name")
    paths.root.mkdir(parents=True)
    write_json_atomic(paths.config, config.to_dict())
    command = [sys.executable, "-m", "cxr_core", "train", "--config", str(paths.config)]
    command += ["--out", str(paths.root)]
    # Written before the process starts, so the child's own status updates always come later.
    update_status(paths, state="starting", started_at=now_iso())
    try:
        with open(paths.log, "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=_child_environment(),
            )
    except OSError as error:
        update_status(paths, state="failed", error=f"could not start: {error}")
        raise JobError(f"could not start training: {error}") from None
    update_status(paths, pid=process.pid)
    return read_run(paths.root)


def _child_environment() -> dict[str, str]:
    """The app's environment, with this package importable wherever the app was started."""
    package_parent = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    python_path = os.pathsep.join(p for p in (package_parent, path) if p)
    return {**os.environ, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"}


def cancel_run(run_dir: str | Path) -> None:
    """Ask a run to stop cleanly: a STOP file, then SIGTERM to its process.

    The run ends its current batch, records state ``cancelled`` and can be resumed.
    """
    paths = RunPaths(Path(run_dir))
    status = read_json(paths.status)
    if status.get("state") not in ACTIVE_STATES:
        raise JobError(f"run '{paths.root.name}' is not running")
    paths.stop_file.touch()
    pid = status.get("pid")
    # A process still starting may not have its handler yet; the STOP file alone stops it
    # at its first batch.
    if status.get("state") != "starting" and _process_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)

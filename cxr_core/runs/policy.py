"""What a shared deployment allows: dataset folders and the size of runs visitors may start.

The app reads its settings (environment variables or ``.streamlit/secrets.toml``) and asks
this module; nothing here knows about Streamlit. Without settings nothing is limited.

- :func:`parse_roots` / :func:`allowed_folder`: ``CXR_DATA_ROOTS`` lists the folders (and
  everything under them) that the Dataset, Train and Evaluate pages may open. Any other path,
  whether it exists or not, gets the same sentence, so the pages tell nobody which server paths
  exist.
- :class:`TrainingLimits`: the largest image size, epochs and images per class, and the
  backbones, that a visitor may start from the app.
- :data:`VISITOR_SAMPLE_SIZES` and :class:`WorkQueue` (:data:`SCORING_QUEUE`): visitors
  score fixed sample sizes (so each is scored once and then cached), one job at a time each,
  at most a few jobs at once on the server, waiting a bounded time for a slot.
- :class:`TrainingQuota`: visitor runs per hour and their total disk, and how long a
  finished visitor run is kept (:func:`clean_visitor_runs`).
- Upload limits (:data:`MAX_FILES_PER_UPLOAD`, :data:`MAX_UPLOAD_MIB`,
  :data:`UPLOAD_BUDGET_MIB`): how many files of one upload Diagnose analyses, the largest file,
  and the uploaded bytes all sessions together may hold in memory at once
  (:mod:`cxr_core.inference.upload_budget` enforces the last).
- :class:`SignInLimiter`: one per server process (:data:`SIGN_IN_LIMITER`), shared by every
  session and thread: wrong administrator passwords space out the next attempt (by anyone)
  exponentially and lock sign-in for a while after too many; each failure is logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cxr_core.backbones import BACKBONES
from cxr_core.config import RunConfig
from cxr_core.errors import ConfigError, DataError, JobError
from cxr_core.imaging.decoded import MAX_BYTES
from cxr_core.io import write_bytes_atomic

__all__ = [
    "MAX_FILES_PER_UPLOAD",
    "MAX_UPLOAD_MIB",
    "NOT_ALLOWED",
    "UPLOAD_BUDGET_MIB",
    "UPLOADER_LIMIT_MB",
    "SCORING_QUEUE",
    "VISITOR_MARK",
    "VISITOR_QUOTA_DEFAULTS",
    "VISITOR_SAMPLE_SIZES",
    "TrainingQuota",
    "WorkQueue",
    "clean_visitor_runs",
    "mark_visitor_run",
    "SIGN_IN_LIMITER",
    "SignInLimiter",
    "SignInOutcome",
    "VISITOR_DEFAULTS",
    "TrainingLimits",
    "allowed_folder",
    "parse_roots",
]

#: Files of one upload that the Diagnose page analyses; the others are refused, not kept.
MAX_FILES_PER_UPLOAD = 12
#: The largest file accepted, in MiB (``cxr_core.imaging.decode`` refuses larger ones itself).
MAX_UPLOAD_MIB = MAX_BYTES // 2**20
#: The uploader widget's own limit. Streamlit's browser side counts its "MB" as 10^6 bytes
#: (2^20 on Windows), so 53 lets every file of MAX_UPLOAD_MIB (52.4 MB) through everywhere and
#: the MiB check above is the one that refuses, with its MiB message.
UPLOADER_LIMIT_MB = -(-MAX_BYTES // 10**6)
#: Uploaded bytes that all sessions together may hold while they are analysed, in MiB: room
#: for two full uploads (12 files of 50 MiB) at once; more waits for "the server is busy".
UPLOAD_BUDGET_MIB = 2 * MAX_FILES_PER_UPLOAD * MAX_UPLOAD_MIB

NOT_ALLOWED = "This server opens only the dataset folders its administrator allowed."

#: Limits for visitors of a password-protected deployment when none are configured.
VISITOR_DEFAULTS = {
    "CXR_VISITOR_MAX_IMAGE_SIZE": "128",
    "CXR_VISITOR_MAX_EPOCHS": "4",
    "CXR_VISITOR_MAX_IMAGES_PER_CLASS": "300",
    "CXR_VISITOR_BACKBONES": "efficientnet_lite0,small_cnn",
}


def parse_roots(text: str | None) -> tuple[Path, ...]:
    """``CXR_DATA_ROOTS`` (folders separated by ``os.pathsep``) -> resolved folders."""
    if not text or not text.strip():
        return ()
    return tuple(Path(part).expanduser().resolve() for part in text.split(os.pathsep) if part)


def allowed_folder(path: str, roots: Sequence[Path]) -> str:
    """Return ``path`` resolved, if it lies in one of ``roots`` (no roots: any path).

    Raises:
        DataError: :data:`NOT_ALLOWED`, the same for every path outside the roots.
    """
    if not roots:
        return path
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        raise DataError(NOT_ALLOWED) from None
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise DataError(NOT_ALLOWED)
    return str(resolved)


@dataclass(frozen=True)
class TrainingLimits:
    """The largest run a visitor may start; None means unlimited.

    Attributes:
        max_image_size: Largest input side in pixels.
        max_epochs: Most epochs of both phases together.
        max_images_per_class: Most train images per class (the run must set
            ``limit_per_class`` at or under it).
        backbones: Backbones a visitor may choose.
    """

    max_image_size: int | None = None
    max_epochs: int | None = None
    max_images_per_class: int | None = None
    backbones: tuple[str, ...] | None = None

    @property
    def unlimited(self) -> bool:
        """Whether no limit is set."""
        return self == TrainingLimits()

    def check(self, config: RunConfig) -> None:
        """Refuse a run over the limits.

        Raises:
            ConfigError: One sentence naming the first limit exceeded.
        """
        model, train, data = config.model, config.train, config.data
        epochs = train.head_epochs + train.finetune_epochs
        images = data.limit_per_class
        problems = [
            (self.backbones is not None and model.backbone not in self.backbones)
            and f"backbone must be one of {', '.join(self.backbones or ())}",
            (self.max_image_size is not None and model.image_size > self.max_image_size)
            and f"image size must be at most {self.max_image_size} px",
            (self.max_epochs is not None and epochs > self.max_epochs)
            and f"epochs of both phases together must be at most {self.max_epochs}",
            (self.max_images_per_class is not None)
            and (images is None or images > self.max_images_per_class)
            and f"images per class must be at most {self.max_images_per_class}",
        ]
        problem = next((p for p in problems if p), None)
        if problem:
            raise ConfigError(f"On this server, {problem}.")

    @classmethod
    def from_settings(cls, settings: Mapping[str, str | None]) -> TrainingLimits:
        """Read ``CXR_VISITOR_MAX_IMAGE_SIZE``, ``_MAX_EPOCHS``, ``_MAX_IMAGES_PER_CLASS`` and
        ``CXR_VISITOR_BACKBONES`` (comma-separated) from ``settings``.

        Raises:
            ConfigError: A value is not a positive integer or names an unknown backbone.
        """

        def number(key: str) -> int | None:
            value = settings.get(key)
            if value is None or not str(value).strip():
                return None
            try:
                parsed = int(str(value).strip())
            except ValueError:
                parsed = 0
            if parsed < 1:
                raise ConfigError(f"{key} must be a positive integer. Received: {key}={value!r}")
            return parsed

        names = settings.get("CXR_VISITOR_BACKBONES")
        backbones = None
        if names is not None and str(names).strip():
            backbones = tuple(n.strip() for n in str(names).split(",") if n.strip())
            unknown = [n for n in backbones if n not in BACKBONES]
            if unknown:
                raise ConfigError(
                    f"CXR_VISITOR_BACKBONES names unknown backbones. Received: {unknown!r}"
                )
        return cls(
            number("CXR_VISITOR_MAX_IMAGE_SIZE"),
            number("CXR_VISITOR_MAX_EPOCHS"),
            number("CXR_VISITOR_MAX_IMAGES_PER_CLASS"),
            backbones,
        )


_LOG = logging.getLogger("cxr.access")


@dataclass(frozen=True)
class SignInOutcome:
    """The result of one sign-in attempt.

    Attributes:
        accepted: The password was right.
        wait_seconds: When refused unchecked: seconds until sign-in is open again (0 when
            the password was checked).
    """

    accepted: bool
    wait_seconds: float = 0.0


@dataclass
class SignInLimiter:
    """A global limit on wrong passwords: back-off, then lockout; safe across threads.

    After ``free_failures`` wrong passwords in a row, each next attempt (from any session)
    must wait ``base_delay * 2 ** k`` seconds (at most ``max_delay``) after the last failure;
    after ``lockout_failures`` the sign-in is closed for ``lockout_seconds``, then the count
    starts again. An attempt made while waiting is refused without checking the password,
    so parallel sessions gain nothing. A right password resets the count.
    """

    free_failures: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    lockout_failures: int = 20
    lockout_seconds: float = 900.0
    clock: Callable[[], float] = time.monotonic
    _failures: int = field(default=0, init=False)
    _open_at: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def attempt(self, check: Callable[[], bool]) -> SignInOutcome:
        """Check a password with ``check()`` unless sign-in is paused; record the result."""
        with self._lock:
            now = self.clock()
            if now < self._open_at:
                return SignInOutcome(False, self._open_at - now)
            if check():
                self._failures, self._open_at = 0, 0.0
                return SignInOutcome(True)
            self._failures += 1
            self._open_at = now + self._delay()
            _LOG.warning(
                "wrong administrator password (%d in a row); sign-in paused %.0f s",
                self._failures,
                self._open_at - now,
            )
            if self._failures >= self.lockout_failures:
                _LOG.warning("administrator sign-in locked for %.0f s", self.lockout_seconds)
                self._failures = 0
            return SignInOutcome(False)

    def _delay(self) -> float:
        if self._failures >= self.lockout_failures:
            return self.lockout_seconds
        extra = self._failures - self.free_failures
        return 0.0 if extra < 0 else min(self.max_delay, self.base_delay * 2.0**extra)


#: The server process's one limiter (Streamlit runs every session in this process).
SIGN_IN_LIMITER = SignInLimiter()


#: Sample sizes a visitor may score on the Evaluate page (stratified; each cached once).
VISITOR_SAMPLE_SIZES = (100, 300)


class WorkQueue:
    """Bounded work shared by every session: at most ``slots`` jobs at once, one per holder
    (a session), each waiting at most ``wait_seconds`` for a slot; safe across threads."""

    def __init__(self, slots: int = 1, wait_seconds: float = 120.0) -> None:
        self.wait_seconds = wait_seconds
        self._slots = threading.BoundedSemaphore(slots)
        self._holders: set[str] = set()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def job(self, holder: str) -> Iterator[None]:
        """Hold a slot for the block.

        Raises:
            JobError: ``holder`` already has a job here, or no slot freed in time.
        """
        with self._lock:
            if holder in self._holders:
                raise JobError("Your previous evaluation is still running; wait for it.")
            self._holders.add(holder)
        try:
            if not self._slots.acquire(timeout=self.wait_seconds):
                raise JobError("The server is busy scoring for others; try again in a minute.")
            try:
                yield
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._holders.discard(holder)


#: The server process's queue for visitors' scoring on the Evaluate page.
SCORING_QUEUE = WorkQueue(slots=1)

#: File that marks a run folder as started by a visitor.
VISITOR_MARK = ".visitor"
#: Visitor training quota in a password-protected deployment when none is configured.
VISITOR_QUOTA_DEFAULTS = {
    "CXR_VISITOR_RUNS_PER_HOUR": "3",
    "CXR_VISITOR_DISK_MB": "500",
    "CXR_VISITOR_KEEP_HOURS": "24",
}


@dataclass(frozen=True)
class TrainingQuota:
    """How much visitors may train: runs started per hour, total disk of their runs
    (MiB), and hours a visitor run is kept once it stopped."""

    runs_per_hour: int = 3
    disk_mb: int = 500
    keep_hours: float = 24.0

    def check(self, runs_root: str | Path, now: float | None = None) -> None:
        """Raise if a visitor may not start another run now.

        Raises:
            JobError: One sentence: the hourly count or the disk quota is used up.
        """
        now = time.time() if now is None else now
        runs = _visitor_runs(Path(runs_root))
        recent = sum(1 for run in runs if now - _started(run) < 3600)
        if recent >= self.runs_per_hour:
            raise JobError(
                f"On this server visitors may start {self.runs_per_hour} runs an hour; "
                "try again later."
            )
        used = sum(_disk_bytes(run) for run in runs) / 2**20
        if used >= self.disk_mb:
            raise JobError(
                f"Visitors' runs already use {used:.0f} MiB of the {self.disk_mb} MiB allowed; "
                "try again when old runs are cleaned up."
            )

    @classmethod
    def from_settings(cls, settings: Mapping[str, str | None]) -> TrainingQuota:
        """Read ``CXR_VISITOR_RUNS_PER_HOUR``, ``CXR_VISITOR_DISK_MB`` and
        ``CXR_VISITOR_KEEP_HOURS`` (unset: the defaults above).

        Raises:
            ConfigError: A value is not a positive number.
        """
        values = []
        for key, default in VISITOR_QUOTA_DEFAULTS.items():
            text = str(settings.get(key) or default).strip()
            try:
                value = float(text)
            except ValueError:
                value = 0.0
            if not value > 0:
                raise ConfigError(f"{key} must be a positive number. Received: {key}={text!r}")
            values.append(value)
        return cls(int(values[0]), int(values[1]), values[2])


def mark_visitor_run(run_dir: str | Path) -> None:
    """Mark a run folder as a visitor's (counted by the quota, cleaned up after a while)."""
    write_bytes_atomic(Path(run_dir) / VISITOR_MARK, str(time.time()).encode("ascii"))


def clean_visitor_runs(
    runs_root: str | Path, keep_hours: float, is_active: Callable[[Path], bool]
) -> list[str]:
    """Delete visitor runs started more than ``keep_hours`` ago that are no longer active.

    Returns:
        The names of the runs deleted.
    """
    now, removed = time.time(), []
    for run in _visitor_runs(Path(runs_root)):
        if now - _started(run) > keep_hours * 3600 and not is_active(run):
            shutil.rmtree(run, ignore_errors=True)
            removed.append(run.name)
            _LOG.info("removed the old visitor run %s", run.name)
    return removed


def _visitor_runs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [folder for folder in root.iterdir() if (folder / VISITOR_MARK).is_file()]


def _started(run: Path) -> float:
    try:
        return (run / VISITOR_MARK).stat().st_mtime
    except OSError:
        return 0.0


def _disk_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return total

"""Errors raised by cxr_core.

Every error a user can cause derives from :class:`CXRError`, so the app and the command line
catch that one class and show its message::

    CXRError
    ├── ConfigError          a setting out of range or of the wrong kind
    ├── DataError            a dataset folder that is missing, empty or malformed
    ├── InvalidImageError    a file that is not a usable X-ray image
    │   └── NotAChestXrayError   an image the input check refuses (no verdict)
    ├── ModelLoadError       a model file that is missing, corrupt or incompatible
    ├── WeightsUnavailableError  pretrained weights that cannot be fetched or read
    ├── JobError             a background training run that cannot be started or stopped
    │   ├── RunFileError     a run folder file (status, history, config) that is malformed
    │   └── RunInUseError    a run folder that another training process holds
    ├── ClusterError         a multi-worker cluster that cannot be reached or lost a worker
    └── StorageError         a file that cannot be written (disk full, read-only) or read
                             safely (not a regular file, too large, too deeply nested)

Errors from TensorFlow, Keras, OpenCV and pydicom are translated into these where they enter.
"""

from __future__ import annotations

__all__ = [
    "CXRError",
    "ClusterError",
    "ConfigError",
    "DataError",
    "InvalidImageError",
    "JobError",
    "ModelLoadError",
    "NotAChestXrayError",
    "RunFileError",
    "RunInUseError",
    "StorageError",
    "WeightsUnavailableError",
]


class CXRError(Exception):
    """Root of every error that cxr_core raises on purpose; its message is meant for users."""


class ConfigError(CXRError, ValueError):
    """A configuration value is invalid; the message names the field and the value received."""


class DataError(CXRError):
    """A dataset folder or table cannot be used."""


class InvalidImageError(CXRError):
    """A file is not an image that the model can read."""


class NotAChestXrayError(InvalidImageError):
    """An image decodes but does not look like a frontal chest X-ray, so it gets no verdict."""


class ModelLoadError(CXRError):
    """A saved model cannot be loaded."""


class WeightsUnavailableError(CXRError):
    """Pretrained weights cannot be downloaded or read."""


class JobError(CXRError):
    """A background training run cannot be started, found or stopped."""


class RunFileError(JobError):
    """A file of a run folder (``status.json``, ``history.jsonl``, ``config.json``) is malformed."""


class RunInUseError(JobError):
    """A run folder is locked by another training process; the message names its PID."""


class ClusterError(CXRError):
    """The workers of a multi-worker run cannot reach each other, or one of them was lost."""


class StorageError(CXRError):
    """A file cannot be written (disk full, read-only folder, no permission) or a stored file
    cannot be read safely (not a regular file, too large, too deeply nested, not JSON)."""

"""Choices the app keeps across reloads and restarts, in one small file beside the runs.

``<runs folder>/app_settings.json`` holds the default model (the one every page starts with)::

    {"default_model": "/srv/cxr/runs/lite0-224/model.keras"}

It is written atomically (:func:`cxr_core.runs.files.write_json_atomic`), so a reader never sees
half
a file. A missing, unreadable or wrongly shaped file reads as "no saved choice", and so does a
saved model that is no longer there: the app then falls back to its bundled default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cxr_core.runs.files import read_json, write_json_atomic

__all__ = ["SETTINGS_FILE", "AppSettings", "read_app_settings", "save_default_model"]

#: Name of the settings file inside the runs folder.
SETTINGS_FILE = "app_settings.json"


@dataclass(frozen=True)
class AppSettings:
    """The saved choices.

    Attributes:
        default_model: Path of the ``.keras`` model pages start with, or None for the app's
            own fallback (the first usable bundled model).
    """

    default_model: str | None = None


def read_app_settings(runs_root: str | Path) -> AppSettings:
    """The settings saved under ``runs_root``; defaults when the file is missing or malformed,
    and no default model when the saved one no longer exists."""
    values = read_json(Path(runs_root) / SETTINGS_FILE)
    model = values.get("default_model")
    if not isinstance(model, str) or not Path(model).is_file():
        model = None
    return AppSettings(default_model=model)


def save_default_model(runs_root: str | Path, model_path: str | Path) -> None:
    """Save ``model_path`` as the default model, keeping the file's other keys."""
    path = Path(runs_root) / SETTINGS_FILE
    write_json_atomic(path, {**read_json(path), "default_model": str(model_path)})

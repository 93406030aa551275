"""Where the app finds models, runs and the dataset: the environment's folders, else the project's.

- ``CXR_MODELS_DIR``: folder of bundled models (``*.keras`` with a ``.json`` sidecar);
  default ``assets/models`` in the project folder.
- ``CXR_RUNS_DIR``: folder of training runs; default ``runs`` in the project folder. Every
  finished run's ``model.keras`` is offered as a model too (:mod:`cxr_app.catalog`).
- ``CXR_DATA``: the dataset folder pages start from; default ``data/chest_xray`` when present.

The variables are read on every call, so a test or a deployment may change them at any time.
Who may do what (passwords, limits, allowed folders) is read by :mod:`cxr_app.access`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "default_data_root", "models_dir", "runs_dir"]

#: The project folder (the one holding ``streamlit_app.py``).
REPO_ROOT = Path(__file__).resolve().parents[1]


def models_dir() -> Path:
    """Folder of bundled models: ``$CXR_MODELS_DIR`` or ``assets/models``."""
    return Path(os.environ.get("CXR_MODELS_DIR") or REPO_ROOT / "assets" / "models")


def runs_dir() -> Path:
    """Folder of training runs: ``$CXR_RUNS_DIR`` or ``runs``."""
    return Path(os.environ.get("CXR_RUNS_DIR") or REPO_ROOT / "runs")


def default_data_root() -> str:
    """``$CXR_DATA``, else ``data/chest_xray`` if it exists, else an empty string."""
    if os.environ.get("CXR_DATA"):
        return os.environ["CXR_DATA"]
    local = REPO_ROOT / "data" / "chest_xray"
    return str(local) if local.is_dir() else ""

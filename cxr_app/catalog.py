"""The models the app offers: discovery, the model in use, and the picker every page shares.

:func:`discover_models` lists every bundled model (``CXR_MODELS_DIR``), every model fitted to a
site (``<runs>/fitted/``) and every finished run's model (``CXR_RUNS_DIR``; folders from
:mod:`cxr_app.environment`), each as a :class:`ModelEntry` checked from its sidecar alone (no
TensorFlow). The model a session uses is kept under :data:`ACTIVE_MODEL`; everyone's default is
saved in ``<runs>/app_settings.json``. Loading a model is :mod:`cxr_app.loaders`' part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from cxr_app.environment import models_dir, runs_dir
from cxr_app.texts import md
from cxr_core.runs import jobs
from cxr_core.runs.files import RunState
from cxr_core.sidecar import ModelMetadata

__all__ = [
    "ACTIVE_MODEL",
    "ModelEntry",
    "active_model",
    "default_model",
    "discover_models",
    "model_metadata",
    "model_picker",
    "no_model_message",
    "set_active_model",
]

#: Session-state key holding the path of the model the user chose (shared by every page).
ACTIVE_MODEL = "active_model"
_PICKER = "model_picker"


def no_model_message() -> str:
    """What to say when there is no model to use."""
    return (
        "No model found - train one on the Train page or see the README. Models are read from "
        f"`{models_dir()}` and from finished runs in `{runs_dir()}`."
    )


@dataclass(frozen=True)
class ModelEntry:
    """A model the app lists.

    Attributes:
        path: The ``.keras`` file.
        label: How pickers show it, short enough for the sidebar: ``"cxr_lite0 - bundled"``
            (``"cxr_lite0 (unusable)"``).
        source: ``"bundled"`` or ``"run"``.
        mtime: The newest modification time of the file and its sidecar (part of every
            cache key).
        problem: Why the model cannot be used (a malformed or missing sidecar, a truncated
            file, a size that disagrees with the model), or None when it can.
        name: The file stem of a bundled model, the run's name for a run's model.
        details: Backbone, input size and validation AUC, e.g. ``"efficientnet_lite0,
            224 px, val AUC 0.997"`` (a caption under the picker); empty when unusable.
    """

    path: str
    label: str
    source: str
    mtime: float
    problem: str | None = None
    name: str = ""
    details: str = ""


@st.cache_data(show_spinner=False, max_entries=256)
def _checked_metadata(path: str, mtime: float) -> tuple[ModelMetadata | None, str | None]:
    from cxr_core.errors import CXRError
    from cxr_core.sidecar import check_model_file

    try:
        return check_model_file(path), None
    except CXRError as error:
        return None, str(error)


def model_metadata(entry: ModelEntry) -> ModelMetadata:
    """The model's checked sidecar; cheap (no TensorFlow model is loaded).

    Raises:
        ModelLoadError: The model is unusable (:attr:`ModelEntry.problem` says why).
    """
    from cxr_core.errors import ModelLoadError

    metadata, problem = _checked_metadata(entry.path, entry.mtime)
    if metadata is None:
        raise ModelLoadError(problem or "the model cannot be read")
    return metadata


def _entry(path: Path, name: str, source: str) -> ModelEntry:
    # Any of the three files changing makes the check run again.
    companions = (path.with_suffix(".json"), path.with_suffix(".gate.npz"))
    mtime = max(
        path.stat().st_mtime, *(p.stat().st_mtime if p.exists() else 0.0 for p in companions)
    )
    metadata, problem = _checked_metadata(str(path), mtime)
    if metadata is None:
        return ModelEntry(str(path), f"{name} (unusable)", source, mtime, problem, name)
    parts = [metadata.backbone, f"{metadata.image_size} px"]
    auc = metadata.metrics.value("roc_auc")
    if auc is not None:
        parts.append(f"val AUC {auc:.3f}")
    if metadata.site_calibration is not None:  # a model fitted to a site (cxr_app/site.py)
        name = Path(metadata.site_calibration.original_model).stem or name
        source = f"fitted to {metadata.site_calibration.site}"
    label = f"{name} - {source}"  # cxr_app/evaluate.py takes the name before " - "
    return ModelEntry(str(path), label, source, mtime, None, name, ", ".join(parts))


def discover_models() -> list[ModelEntry]:
    """Every bundled model, every model fitted to a site (``<runs>/fitted/``), then every
    finished run's model, newest run first.

    A model whose files cannot be used is listed too, with its :attr:`ModelEntry.problem`.
    """
    entries = []
    folder = models_dir()
    bundled = sorted(folder.glob("*.keras")) if folder.is_dir() else []
    for path in bundled:
        if path.name.startswith(".") or not path.with_suffix(".json").is_file():
            continue
        entries.append(_entry(path, path.stem, "bundled"))
    fitted = runs_dir() / "fitted"  # models fitted to a site on the Evaluate page
    for path in sorted(fitted.glob("*.keras")) if fitted.is_dir() else []:
        if not path.name.startswith(".") and path.with_suffix(".json").is_file():
            entries.append(_entry(path, path.stem, "fitted"))
    for run in jobs.list_runs(runs_dir()):
        path = run.path / "model.keras"
        if run.state != RunState.FINISHED or not path.is_file():
            continue
        entries.append(_entry(path, run.name, "run"))
    return entries


def _model_name(path: str) -> str:
    file = Path(path)
    return file.parent.name if file.name == "model.keras" else file.stem


def set_active_model(path: str, confirm: bool = True, save: bool = True) -> None:
    """Make the model at ``path`` the one every page uses (``confirm``: say so in a toast).

    With ``save``, in the open mode and for a signed-in administrator, the choice is also saved
    as everyone's default in ``<runs>/app_settings.json``, so it survives reloads and restarts
    (the Train page's "Use this model" compares it with the default first); the sidebar picker
    and a visitor's choice stay in the session.
    """
    from cxr_app.access import may_administer
    from cxr_core.runs.app_settings import save_default_model

    st.session_state[ACTIVE_MODEL] = str(path)
    name, saved = md(_model_name(path)), save and may_administer()
    if saved:
        try:
            save_default_model(runs_dir(), path)
        except OSError as error:
            saved = False
            st.toast(f"The choice could not be saved for later visits: {md(error)}")
    if confirm:
        where = "the default from now on" if saved else "in use for this session"
        st.toast(f"Model **{name}** is {where}.", icon=":material/check_circle:")


def active_model(entries: list[ModelEntry]) -> ModelEntry | None:
    """The model this session chose if it is still listed, else the saved default if it is
    listed and usable (see :func:`set_active_model`), else the first usable bundled model,
    else the newest usable run, else the first (unusable) entry."""
    chosen = st.session_state.get(ACTIVE_MODEL)
    for entry in entries:
        if entry.path == chosen:
            return entry
    return default_model(entries)


def default_model(entries: list[ModelEntry]) -> ModelEntry | None:
    """Everyone's default: the saved one if it is listed and usable, else the first usable
    bundled model, else the newest usable run, else the first (unusable) entry."""
    from cxr_core.runs.app_settings import read_app_settings

    usable = [entry for entry in entries if entry.problem is None]
    saved = read_app_settings(runs_dir()).default_model
    for entry in usable:
        if entry.path == saved:
            return entry
    return (usable or entries or [None])[0]


def _remember_pick() -> None:
    # The picker chooses for this session only: everyone's default changes on the Train page,
    # after a comparison with the current one.
    set_active_model(st.session_state[_PICKER], confirm=False, save=False)


def model_picker(entries: list[ModelEntry], container: Any = None) -> ModelEntry | None:
    """A model selectbox (in the sidebar by default) shared by every page; None if no model."""
    current = active_model(entries)
    if current is None:
        return None
    # Written before the widget so that the choice survives switching pages.
    st.session_state[_PICKER] = current.path
    labels = {entry.path: entry.label for entry in entries}
    (container or st.sidebar).selectbox(
        "Model", list(labels), format_func=labels.get, key=_PICKER, on_change=_remember_pick
    )
    if current.details:  # the label stays short enough not to be cut off in the sidebar
        (container or st.sidebar).caption(md(current.details))
    return current

"""Shared helpers of the Streamlit app: paths, model discovery, cached loaders, session keys.

Pages stay thin: they call these helpers, their own page's module (``cxr_app.diagnose``,
``cxr_app.evaluate``, ``cxr_app.train``) and ``cxr_core``, and render. What one page alone
uses lives in its module; what several share lives here. This is the one module of the app that
reads the environment:

- ``CXR_MODELS_DIR``: folder of bundled models (``*.keras`` with a ``.json`` sidecar);
  default ``assets/models`` in the project folder.
- ``CXR_RUNS_DIR``: folder of training runs; default ``runs`` in the project folder. Every
  finished run's ``model.keras`` is offered as a model too.
- ``CXR_DATA``: the dataset folder pages start from; default ``data/chest_xray`` when present.

Models and TensorFlow load once per process (``cxr_app.serving.model_pool``, keyed by path and
file time, so a retrained model is picked up; warmed up in the background from the first
page); tables and audits are cached with ``st.cache_data``, an upload's analysis by content
and model (:func:`analyse_upload`). Nothing here imports
TensorFlow before a page needs a model: Home, Dataset and the Train monitor read JSON sidecars
and folders only (``tests/app/test_app_speed.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image, ImageOps
from streamlit.runtime.scriptrunner import script_runner

from cxr_app.access import checked_folder
from cxr_core.data import audit
from cxr_core.data import tables as data
from cxr_core.errors import JobError
from cxr_core.explain.report import DISCLAIMER
from cxr_core.markdown import escape_markdown
from cxr_core.runs import jobs
from cxr_core.runs.files import RunState
from cxr_core.sidecar import ModelMetadata

if TYPE_CHECKING:  # imported only for annotations: Home must not load the model code
    from cxr_core.inference.upload import UploadAnalysis

__all__ = [
    "default_model",
    "ACTIVE_MODEL",
    "DATASET_GUIDE",
    "DISCLAIMER",
    "METHODS",
    "ModelEntry",
    "active_model",
    "analyse_upload",
    "audit_dataset",
    "dataset_guide",
    "default_data_root",
    "device_summary",
    "disclaimer",
    "discover_models",
    "display_table",
    "format_seconds",
    "heatmap_view",
    "load_model",
    "md",
    "model_metadata",
    "model_picker",
    "models_dir",
    "no_model_message",
    "predictor",
    "runs_dir",
    "scan_dataset",
    "set_active_model",
    "thumbnail",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Untrusted text (file names, DICOM fields, run names, error messages) inside Markdown.
md = escape_markdown
#: Session-state key holding the path of the model the user chose (shared by every page).
ACTIVE_MODEL = "active_model"
_PICKER = "model_picker"
#: Explanation methods as the pages name them -> ``Predictor.explain`` methods.
METHODS = {"Grad-CAM": "gradcam", "Grad-CAM++": "gradcam++"}
#: Largest side of the images decoded, explained and kept for display after a prediction.
DISPLAY_SIDE = 1024  # = cxr_core.imaging.scoring.DECODE_SIDE: the model and the page see one image
#: Analyses kept in the cache for all sessions together: at most 3 MB of pixels and maps each.
MAX_CACHED_ANALYSES = 32
#: Uploads decoded and analysed at once for all sessions together. With at most ~8 bytes per
#: source pixel (a 16-bit RGBA PNG; an 8-bit one ~4) and 50 megapixels, two at once bound the
#: server's decoding memory to under 1 GB whatever the visitors upload.
MAX_CONCURRENT_ANALYSES = 2
#: Seconds an upload waits for a free analysis slot before the page says the server is busy.
ANALYSIS_WAIT_SECONDS = 120.0
_ANALYSIS_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_ANALYSES)

DATASET_GUIDE = """
**No dataset yet?** The app expects Kaggle's *Chest X-Ray Images (Pneumonia)* (Kermany, Zhang
and Goldbaum 2018, CC BY 4.0) in this layout:

```
data/chest_xray/train/NORMAL/*.jpeg     data/chest_xray/train/PNEUMONIA/*.jpeg
data/chest_xray/val/...                 data/chest_xray/test/...   (optional)
```

1. Download it from kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia (or with
   `kaggle datasets download -d paultimothymooney/chest-xray-pneumonia`).
2. Unzip it so that `data/chest_xray/train` exists beside `streamlit_app.py`, or anywhere
   else and type that folder in the dataset field (or start the app with
   `CXR_DATA=/path/to/chest_xray`).
"""


def _clean_up_after_run() -> None:
    """Streamlit's clean-up after a script run, less its ``keras.backend.clear_session()``."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        with contextlib.suppress(Exception):
            pyplot.close("all")


def _keep_keras_session() -> None:
    """Stop Streamlit from clearing the Keras session after every script run.

    Once Keras is imported, Streamlit calls ``keras.backend.clear_session()`` after each run
    (``script_runner._clean_problem_modules``): in Keras 3 a full ``gc.collect()`` over
    TensorFlow's objects and a cleared TensorFlow kernel cache. That cost 0.3 s of CPU on every
    page switch and slider move, and made the next Grad-CAM 1-3 s instead of 0.1 s. The app
    builds models only in cached loaders, so there is nothing to clear between runs.
    """
    if hasattr(script_runner, "_clean_problem_modules"):  # absent: a Streamlit without it
        script_runner._clean_problem_modules = _clean_up_after_run


_keep_keras_session()

# ---------------------------------------------------------------------------------------------
# Paths


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


def no_model_message() -> str:
    """What to say when there is no model to use."""
    return (
        "No model found - train one on the Train page or see the README. Models are read from "
        f"`{models_dir()}` and from finished runs in `{runs_dir()}`."
    )


def dataset_guide() -> None:
    """Show how to get and place Kaggle's chest X-ray dataset (:data:`DATASET_GUIDE`)."""
    st.markdown(DATASET_GUIDE)


def disclaimer() -> None:
    """Show the research-demo note."""
    st.caption(f":warning: **{DISCLAIMER}** Outputs are model scores, not findings.")


# ---------------------------------------------------------------------------------------------
# Models


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


def _loaded(path: str, mtime: float) -> tuple[Any, ModelMetadata]:
    from cxr_app.serving import model_pool

    served = model_pool().get(path, mtime)
    return served.model, served.metadata


def load_model(entry: ModelEntry) -> tuple[Any, ModelMetadata]:
    """``(keras.Model, metadata)``, loaded once per file version for the whole process (the
    model pool of ``cxr_app.serving``, shared with the warm-up); raises ModelLoadError."""
    return _loaded(entry.path, entry.mtime)


def _predictor(path: str, mtime: float) -> Any:
    from cxr_app.serving import model_pool

    return model_pool().get(path, mtime).predictor


def predictor(entry: ModelEntry) -> Any:
    """The :class:`cxr_core.inference.predictor.Predictor` of a model, built once per file
    version."""
    return _predictor(entry.path, entry.mtime)


@st.cache_data(show_spinner=False, max_entries=MAX_CACHED_ANALYSES)
def _analyse(path: str, mtime: float, digest: str, _content: bytes, name: str):
    from cxr_app.serving import model_pool
    from cxr_core.inference.upload import analyse_upload as analyse

    # Only a cache miss decodes: it takes one of the server's few analysis slots.
    if not _ANALYSIS_SLOTS.acquire(timeout=ANALYSIS_WAIT_SECONDS):
        raise JobError("The server is busy analysing other uploads; try again in a minute.")
    try:
        return analyse(model_pool().get(path, mtime).worker, _content, name)
    finally:
        _ANALYSIS_SLOTS.release()
        _return_freed_memory()


def _return_freed_memory() -> None:
    """Hand the decoder's freed buffers back to the system (glibc keeps them per thread arena
    otherwise, so a server grows with every large upload and never shrinks)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def analyse_upload(entry: ModelEntry, content: bytes, name: str) -> UploadAnalysis:
    """Decode an uploaded file, score it and explain it by every method (cached by content
    and model: changing the opacity or the method later calls no model).

    Returns:
        A :class:`cxr_core.inference.upload.UploadAnalysis`.

    Raises:
        InvalidImageError: The file is not a usable image; the message says why.
    """
    digest = hashlib.blake2b(content, digest_size=16).hexdigest()
    return _analyse(entry.path, entry.mtime, digest, content, name)


def heatmap_view(result: UploadAnalysis, method: str, alpha: float) -> np.ndarray:
    """The overlay the Diagnose page shows: the cached map of ``method`` (a ``METHODS`` key or
    value) over the X-ray at maximum opacity ``alpha``; milliseconds, no model call.

    Returns:
        ``(H, W, 3)`` uint8 RGB (:func:`cxr_core.explain.heatmap.overlay`).
    """
    from cxr_core.explain.heatmap import overlay

    return overlay(result.pixels, result.heatmaps[METHODS.get(method, method)], alpha)


# ---------------------------------------------------------------------------------------------
# Data


@st.cache_resource(show_spinner=False)
def device_summary() -> dict[str, Any]:
    """The GPUs the NVIDIA driver lists (``cxr_core.distributed.devices.describe_driver_gpus``),
    asked once.

    TensorFlow is not imported for this (it costs seconds); a run records what TensorFlow used.
    """
    from cxr_core.distributed.devices import describe_driver_gpus

    return describe_driver_gpus()


@st.cache_data(show_spinner="Listing images...", ttl=300, max_entries=8)
def _scan_dataset(root: str) -> pd.DataFrame:
    return data.scan(root)


def scan_dataset(root: str) -> pd.DataFrame:
    """The :func:`cxr_core.data.tables.scan` table of ``root``.

    Raises:
        DataError: The folder is outside ``CXR_DATA_ROOTS`` (one sentence for every such
            path), or it is missing, empty or malformed.
    """
    return _scan_dataset(checked_folder(root))


@st.cache_data(show_spinner="Auditing the dataset...", ttl=3600, max_entries=4)
def audit_dataset(root: str, n_images: int) -> audit.AuditResult:
    """The dataset audit of ``root`` (``n_images`` is part of the key, to notice changes)."""
    return audit.audit_dataset(scan_dataset(root))


#: Column headers as the app shows them, for the machine names of ``cxr_core`` tables.
HEADERS = {
    "split": "Split", "label": "Class", "total": "Total", "sampled": "Files read",
    "median_width": "Median width (px)", "median_height": "Median height (px)",
    "min_side": "Smallest side (px)", "max_side": "Largest side (px)",
    "modes": "Colour modes", "formats": "File formats", "files": "Files", "splits": "Splits",
    "labels": "Classes", "across_splits": "Spans splits", "conflicting_labels": "Spans classes",
    "names": "File names", "patient_id": "Patient", "images": "Images", "example": "Example file",
}  # fmt: skip


def display_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a ``cxr_core`` table for ``st.dataframe``: human headers, no empty cells.

    Columns and the index name are renamed by :data:`HEADERS` (others: first letter upper
    case, ``_`` as spaces); booleans read ``yes``/``no``; missing values (None, NaN) ``-``.
    """

    def header(name: Any) -> Any:
        if not isinstance(name, str):
            return name
        return HEADERS.get(name) or name[:1].upper() + name[1:].replace("_", " ")

    shown = frame.rename(columns=header, index={"total": "Total"})
    shown.index.name = header(frame.index.name)
    for column in shown.columns:
        values = shown[column]
        if values.dtype == bool:
            shown[column] = values.map({True: "yes", False: "no"})
        elif values.isna().any():
            # As text throughout: a column mixing numbers and "-" would not convert to Arrow.
            shown[column] = values.map(lambda value: "-" if pd.isna(value) else str(value))
    return shown


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(path: str, side: int = 160, border: tuple[int, int, int] | None = None):
    """A small RGB copy of an image file, optionally framed in a coloured border (6 px)."""
    with Image.open(path) as image:
        image.draft("L", (side, side))  # JPEG: decode at reduced scale
        small = ImageOps.exif_transpose(image).convert("RGB")
        small.thumbnail((side, side))
    if border is not None:
        small = ImageOps.expand(small, border=6, fill=border)
    return np.asarray(small)


# ---------------------------------------------------------------------------------------------
# Text


def format_seconds(seconds: float | None) -> str:
    """``75`` -> ``"1 min 15 s"``, ``9`` -> ``"9 s"``, ``4000`` -> ``"1 h 6 min"``, None -> "-"."""
    if seconds is None:
        return "-"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"

"""Shared helpers of the Streamlit app: paths, model discovery, cached loaders, session keys.

Pages stay thin: they call these helpers and ``cxr_core``, and render. This is the one module of
the app that reads the environment:

- ``CXR_MODELS_DIR``: folder of bundled models (``*.keras`` with a ``.json`` sidecar);
  default ``assets/models`` beside this file.
- ``CXR_RUNS_DIR``: folder of training runs; default ``runs`` beside this file. Every finished
  run's ``model.keras`` is offered as a model too.
- ``CXR_DATA``: the dataset folder pages start from; default ``data/chest_xray`` when present.

Models and TensorFlow load once per process (``st.cache_resource``, keyed by path and file
time, so a retrained model is picked up); tables and audits are cached with ``st.cache_data``,
predictions on disk in the runs folder (``cxr_core.score_cache``). Nothing here imports
TensorFlow before a page needs a model: Home, Dataset and the Train monitor read JSON sidecars
and folders only (``tests/test_app_speed.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image, ImageOps
from streamlit.runtime.scriptrunner import script_runner

from app_access import checked_folder
from cxr_core import audit, data, eval_sets, jobs
from cxr_core.markdown import escape_markdown
from cxr_core.report import DISCLAIMER
from cxr_core.runs import RunState
from cxr_core.sidecar import ModelMetadata

__all__ = [
    "ACTIVE_MODEL",
    "DATASET_GUIDE",
    "DISCLAIMER",
    "METHODS",
    "ModelEntry",
    "active_model",
    "analyse_bytes",
    "analyse_upload",
    "audit_dataset",
    "dataset_guide",
    "default_data_root",
    "device_summary",
    "disclaimer",
    "discover_models",
    "display_table",
    "evaluation_sets",
    "heatmap_view",
    "load_model",
    "md",
    "model_metadata",
    "model_picker",
    "models_dir",
    "no_model_message",
    "operating_point",
    "predictions",
    "predictor",
    "result_row",
    "runs_dir",
    "scan_dataset",
    "score_cache_dir",
    "set_active_model",
    "technical_fields",
    "thumbnail",
    "view_change_seconds",
]

REPO_ROOT = Path(__file__).resolve().parent
#: Untrusted text (file names, DICOM fields, run names, error messages) inside Markdown.
md = escape_markdown
#: Session-state key holding the path of the model the user chose (shared by every page).
ACTIVE_MODEL = "active_model"
_PICKER = "model_picker"
#: Explanation methods as the pages name them -> ``Predictor.explain`` methods.
METHODS = {"Grad-CAM": "gradcam", "Grad-CAM++": "gradcam++"}
#: Largest side of the images decoded, explained and kept for display after a prediction.
DISPLAY_SIDE = 1024
#: Files of one upload that the Diagnose page analyses; the others are listed, not decoded.
MAX_FILES_PER_UPLOAD = 12
#: Largest accepted upload, in megabytes (cxr_core.imaging refuses files over 50 MB).
MAX_UPLOAD_MB = 50
#: Analyses kept in the cache for all sessions together: at most 3 MB of pixels and maps each.
MAX_CACHED_ANALYSES = 32

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
    sidecar = path.with_suffix(".json")
    mtime = max(path.stat().st_mtime, sidecar.stat().st_mtime if sidecar.exists() else 0.0)
    metadata, problem = _checked_metadata(str(path), mtime)
    if metadata is None:
        return ModelEntry(str(path), f"{name} (unusable)", source, mtime, problem, name)
    parts = [metadata.backbone, f"{metadata.image_size} px"]
    auc = metadata.metrics.value("roc_auc")
    if auc is not None:
        parts.append(f"val AUC {auc:.3f}")
    label = f"{name} - {source}"  # pages/evaluate.py takes the name before " - "
    return ModelEntry(str(path), label, source, mtime, None, name, ", ".join(parts))


def discover_models() -> list[ModelEntry]:
    """Every bundled model, then every finished run's model, newest run first.

    A model whose files cannot be used is listed too, with its :attr:`ModelEntry.problem`.
    """
    entries = []
    folder = models_dir()
    bundled = sorted(folder.glob("*.keras")) if folder.is_dir() else []
    for path in bundled:
        if path.name.startswith(".") or not path.with_suffix(".json").is_file():
            continue
        entries.append(_entry(path, path.stem, "bundled"))
    for run in jobs.list_runs(runs_dir()):
        path = run.path / "model.keras"
        if run.state != RunState.FINISHED or not path.is_file():
            continue
        entries.append(_entry(path, run.name, "run"))
    return entries


def _model_name(path: str) -> str:
    file = Path(path)
    return file.parent.name if file.name == "model.keras" else file.stem


def set_active_model(path: str, confirm: bool = True) -> None:
    """Make the model at ``path`` the one every page uses (``confirm``: say so in a toast).

    In the open mode and for a signed-in administrator the choice is also saved as everyone's
    default in ``<runs>/app_settings.json``, so it survives reloads and restarts; a visitor's
    choice stays in their session.
    """
    from app_access import may_administer
    from cxr_core.app_settings import save_default_model

    st.session_state[ACTIVE_MODEL] = str(path)
    name, saved = md(_model_name(path)), may_administer()
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
    from cxr_core.app_settings import read_app_settings

    chosen = st.session_state.get(ACTIVE_MODEL)
    for entry in entries:
        if entry.path == chosen:
            return entry
    usable = [entry for entry in entries if entry.problem is None]
    saved = read_app_settings(runs_dir()).default_model
    for entry in usable:
        if entry.path == saved:
            return entry
    return (usable or entries or [None])[0]


def _remember_pick() -> None:
    set_active_model(st.session_state[_PICKER], confirm=False)


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


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def _loaded(path: str, mtime: float) -> tuple[Any, ModelMetadata]:
    from cxr_core.model import load_model as load

    return load(path)


def load_model(entry: ModelEntry) -> tuple[Any, ModelMetadata]:
    """``(keras.Model, metadata)``, loaded once per file version; raises ModelLoadError."""
    return _loaded(entry.path, entry.mtime)


@st.cache_resource(show_spinner=False, max_entries=4)
def _predictor(path: str, mtime: float) -> Any:
    from cxr_core.gradcam import Predictor

    model, metadata = _loaded(path, mtime)
    return Predictor.with_stored_gate(model, metadata, path)


def predictor(entry: ModelEntry) -> Any:
    """The :class:`cxr_core.gradcam.Predictor` of a model, built once per file version."""
    return _predictor(entry.path, entry.mtime)


def _fit(image: np.ndarray, side: int) -> np.ndarray:
    scale = side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def analyse_bytes(predictor: Any, content: bytes, name: str) -> dict[str, Any]:
    """The Diagnose page's analysis of one file, uncached (see :func:`analyse_upload`).

    A JPEG is decoded reduced (libjpeg DCT scaling) and any image larger than
    ``DISPLAY_SIDE`` is shrunk before the model and Grad-CAM see it, so no full-size copy,
    heatmap or overlay is ever made (``benchmarks/upload_memory.py`` measures it). Both
    heatmaps come from one forward and one backward pass (``Predictor.explain_all``).

    Returns:
        As :func:`analyse_upload`.
    """
    from cxr_core.imaging import read_image

    decoded = read_image(content, filename=name, max_side=DISPLAY_SIDE)
    pixels = _fit(decoded.pixels, DISPLAY_SIDE)
    colour = float(decoded.info.get("colour", 0.0))
    result = predictor.explain_all(pixels, colour=colour)
    return {
        "pixels": pixels,
        # Kept as uint8: a quarter of the float32 maps' memory in the cache; overlay takes them.
        "heatmaps": {
            method: np.rint(heatmap * 255).astype(np.uint8)
            for method, heatmap in result.heatmaps.items()
        },
        "info": dict(decoded.info),
        "probability": result.probability,
        "label": result.label,
        "threshold": result.threshold,
        "accepted": result.input_check.accepted,
        "refusal": result.input_check.reason,
    }


@st.cache_data(show_spinner=False, max_entries=MAX_CACHED_ANALYSES)
def _analyse(path: str, mtime: float, digest: str, _content: bytes, name: str):
    return analyse_bytes(_predictor(path, mtime), _content, name)


def analyse_upload(entry: ModelEntry, content: bytes, name: str) -> dict[str, Any]:
    """Decode an uploaded file, score it and explain it by every method (cached by content
    and model: changing the opacity or the method later calls no model).

    Returns:
        ``pixels`` (uint8, at most ``DISPLAY_SIDE`` on a side), ``heatmaps`` (each of
        ``METHODS``' values -> uint8 0-255 map of the same shape, 255 the strongest),
        ``info`` (technical fields), ``probability``, ``label``, ``threshold``, ``accepted``
        (whether the input check took it for a frontal chest X-ray) and ``refusal`` (the
        sentence saying why not, or None).

    Raises:
        InvalidImageError: The file is not a usable image; the message says why.
    """
    digest = hashlib.blake2b(content, digest_size=16).hexdigest()
    return _analyse(entry.path, entry.mtime, digest, content, name)


def heatmap_view(result: dict[str, Any], method: str, alpha: float) -> np.ndarray:
    """The overlay the Diagnose page shows: the cached map of ``method`` (a ``METHODS`` key or
    value) over the X-ray at maximum opacity ``alpha``; milliseconds, no model call.

    Returns:
        ``(H, W, 3)`` uint8 RGB (:func:`cxr_core.heatmap.overlay`).
    """
    from cxr_core.heatmap import overlay

    return overlay(result["pixels"], result["heatmaps"][METHODS.get(method, method)], alpha)


#: Human names of ``cxr_core.imaging``'s technical fields; others get their key in words.
FIELD_NAMES = {
    "format": "Format", "width": "Width (px)", "height": "Height (px)",
    "bit_depth": "Bit depth", "mode": "Pixel mode", "colour": "Colour (mean chroma, 0 = grey)",
    "photometric_interpretation": "Photometric interpretation", "modality": "Modality",
    "view_position": "View position", "frames": "Frames", "transfer_syntax": "Transfer syntax",
    "note": "Note",
}  # fmt: skip


def technical_fields(info: dict[str, Any]) -> pd.DataFrame:
    """An analysed file's technical fields as two text columns, ``Field`` and ``Value``
    (human names, numbers rounded, "-" for an empty value)."""

    def text(value: Any) -> str:
        if value is None or str(value).strip() == "":
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    return pd.DataFrame(
        {
            "Field": [FIELD_NAMES.get(key, key.replace("_", " ").capitalize()) for key in info],
            "Value": [text(value) for value in info.values()],
        }
    )


def result_row(name: str, result: dict[str, Any] | None) -> dict[str, str]:
    """One text row of the Diagnose page's results table (no empty cell).

    ``result`` is :func:`analyse_upload`'s, or None for a file that could not be read (its
    message is shown in full beside the table). A refused image's probability is withheld.
    """
    if result is None:
        return {
            "File": name, "Model output": "not analysed", "Probability of pneumonia": "-",
            "Threshold": "-", "Input check": "unreadable file (message above)",
        }  # fmt: skip
    accepted = result["accepted"]
    return {
        "File": name,
        "Model output": result["label"] if accepted else "no verdict",
        "Probability of pneumonia": f"{result['probability']:.3f}" if accepted else "-",
        "Threshold": f"{result['threshold']:.3f}",
        "Input check": "passed" if accepted else "refused: not a frontal chest X-ray?",
    }


def view_change_seconds(
    predictor: Any, content: bytes, name: str, repeats: int = 5
) -> dict[str, float]:
    """Time the Diagnose page's image work for one upload (for ``benchmarks/``).

    Returns:
        ``analyse_s``: decoding and one forward and one backward pass for both maps (what a
        new upload costs); ``opacity_s``: median of ``repeats`` blends of the shown map at a
        new opacity; ``method_s``: median of ``repeats`` switches to the other method's cached
        map. Neither change calls the model: :func:`heatmap_view` is all the page redoes.
    """
    import time

    def median_seconds(views: list[tuple[str, float]]) -> float:
        times = []
        for method, alpha in views:
            start = time.perf_counter()
            heatmap_view(result, method, alpha)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    start = time.perf_counter()
    result = analyse_bytes(predictor, content, name)
    analyse_s = time.perf_counter() - start
    opacities = [("Grad-CAM", 0.2 + 0.1 * (i % 7)) for i in range(repeats)]
    methods = [(("Grad-CAM++", "Grad-CAM")[i % 2], 0.6) for i in range(repeats)]
    return {
        "analyse_s": analyse_s,
        "opacity_s": median_seconds(opacities),
        "method_s": median_seconds(methods),
    }


# ---------------------------------------------------------------------------------------------
# Data


@st.cache_resource(show_spinner=False)
def device_summary() -> dict[str, Any]:
    """The GPUs the NVIDIA driver lists (``cxr_core.devices.describe_driver_gpus``), asked once.

    TensorFlow is not imported for this (it costs seconds); a run records what TensorFlow used.
    """
    from cxr_core.devices import describe_driver_gpus

    return describe_driver_gpus()


@st.cache_data(show_spinner="Listing images...", ttl=300, max_entries=8)
def _scan_dataset(root: str) -> pd.DataFrame:
    return data.scan(root)


def scan_dataset(root: str) -> pd.DataFrame:
    """The :func:`cxr_core.data.scan` table of ``root``.

    Raises:
        DataError: The folder is outside ``CXR_DATA_ROOTS`` (one sentence for every such
            path), or it is missing, empty or malformed.
    """
    return _scan_dataset(checked_folder(root))


@st.cache_data(show_spinner="Auditing the dataset...", ttl=3600, max_entries=4)
def audit_dataset(root: str, n_images: int) -> audit.AuditResult:
    """The dataset audit of ``root`` (``n_images`` is part of the key, to notice changes)."""
    return audit.audit_dataset(scan_dataset(root))


@st.cache_data(show_spinner="Preparing the evaluation sets...", ttl=3600, max_entries=8)
def _evaluation_sets(root: str, n_images: int, _entry: ModelEntry, path: str, mtime: float):
    from cxr_core.score_cache import cached_splits

    resolve = cached_splits(_score_cache(str(score_cache_dir())))
    return eval_sets.evaluation_sets(scan_dataset(root), model_metadata(_entry), resolve)


def evaluation_sets(root: str, entry: ModelEntry) -> list[eval_sets.EvalSet]:
    """The sets a model can be evaluated on (``cxr_core.eval_sets``), cached per dataset size.

    The rebuilt validation split is also kept on disk beside the cached scores, so a restart
    does not split the training images again.

    Raises:
        CXRError: The dataset or the model cannot be used.
    """
    return _evaluation_sets(root, len(scan_dataset(root)), entry, entry.path, entry.mtime)


@st.cache_resource(show_spinner=False, max_entries=4)
def _score_cache(folder: str) -> Any:
    from cxr_core.score_cache import ScoreCache

    return ScoreCache(Path(folder))


def score_cache_dir() -> Path:
    """Where scores are cached per model and image list: ``.cache/scores`` in the runs folder."""
    return runs_dir() / ".cache" / "scores"


def predictions(entry: ModelEntry, table: pd.DataFrame, progress: Any = None) -> np.ndarray:
    """PNEUMONIA probabilities of every image of ``table``, in its order.

    Cached on disk by model file version and image list (``cxr_core.score_cache``), so a
    restart does not score again; the model loads only on a miss.

    Args:
        entry: The model.
        table: Rows of a scan table.
        progress: Called with a ``cxr_core.eval_sets.ScoringProgress`` while scoring.

    Raises:
        CXRError: The model cannot be loaded or an image cannot be read.
    """
    from cxr_core.score_cache import score_images

    return score_images(
        lambda: load_model(entry)[0],
        entry.path,
        table,
        model_metadata(entry).image_size,
        cache=_score_cache(str(score_cache_dir())),
        progress=progress,
    )


@st.cache_data(show_spinner=False, max_entries=64)
def operating_point(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    stored_threshold: float | None = None,
    prevalence: float | None = None,
) -> Any:
    """``cxr_core.operating_point.operating_point``, cached by its arguments.

    Raises:
        DataError: One class only, or a value out of range.
    """
    from cxr_core.operating_point import operating_point as compute

    return compute(labels, scores, threshold, stored_threshold, prevalence)


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
# Training

#: Train page widget keys and their first values: a run that finishes in minutes on a CPU.
TRAIN_DEFAULTS: dict[str, Any] = {
    "t_data": "", "t_backbone": "efficientnet_lite0", "t_weights": "imagenet", "t_weights_file": "",
    "t_size": 128, "t_head_epochs": 1, "t_finetune_epochs": 1, "t_batch": 32,
    "t_head_lr": 1e-3, "t_finetune_lr": 1e-4, "t_layers": 60, "t_class_weights": True,
    "t_augment": 1.0, "t_val_fraction": 0.15, "t_seed": 42, "t_limit": 300,
    "t_dropout": 0.2, "t_patience": 3, "t_rule": "youden",
    "t_contrast": "clahe", "t_acquisition": 1.0, "t_threshold_scores": "stressed",
    "t_calibration": "platt",
}  # fmt: skip


#: Train page widget values on a machine where TensorFlow sees a GPU: full-size images, all of
#: them, larger batches and the library's default epochs.
GPU_TRAIN_DEFAULTS: dict[str, Any] = {
    "t_size": 224, "t_batch": 64, "t_limit": 0, "t_head_epochs": 2, "t_finetune_epochs": 4,
}  # fmt: skip
#: Train page widget keys -> the settings of :func:`cxr_core.run_settings.run_config`.
TRAIN_SETTINGS = {
    "t_data": "data_root", "t_backbone": "backbone", "t_size": "image_size",
    "t_dropout": "dropout", "t_contrast": "contrast", "t_head_epochs": "head_epochs",
    "t_finetune_epochs": "finetune_epochs", "t_batch": "batch_size",
    "t_head_lr": "head_learning_rate", "t_finetune_lr": "finetune_learning_rate",
    "t_layers": "finetune_layers", "t_class_weights": "class_weighting", "t_augment": "augment",
    "t_acquisition": "acquisition_augment", "t_val_fraction": "val_fraction", "t_seed": "seed",
    "t_limit": "limit_per_class", "t_patience": "early_stopping_patience",
    "t_rule": "threshold_rule", "t_threshold_scores": "threshold_scores",
    "t_calibration": "calibration",
}  # fmt: skip


def train_defaults(devices: dict[str, Any]) -> dict[str, Any]:
    """The Train page's first widget values: :data:`TRAIN_DEFAULTS`, with
    :data:`GPU_TRAIN_DEFAULTS` over them when ``devices`` (:func:`device_summary`) has a GPU."""
    return {**TRAIN_DEFAULTS, **(GPU_TRAIN_DEFAULTS if devices.get("gpus") else {})}


def run_config_from(values: Any) -> Any:
    """The RunConfig of the Train page's widget values (a mapping of ``TRAIN_DEFAULTS`` keys),
    through the command line's own mapping, :func:`cxr_core.run_settings.run_config`.

    Raises:
        ConfigError: A value is out of range or the weights file is missing (the message
            names the setting).
    """
    from cxr_core.run_settings import run_config

    settings = {name: values[key] for key, name in TRAIN_SETTINGS.items()}
    file = values["t_weights"] == "file"
    settings["weights"] = values["t_weights_file"] if file else values["t_weights"]
    return run_config(settings)


def format_seconds(seconds: float | None) -> str:
    """``75`` -> ``"1 min 15 s"``, ``9`` -> ``"9 s"``, ``4000`` -> ``"1 h 6 min"``, None -> "-"."""
    if seconds is None:
        return "-"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def training_estimate(config: Any, table: pd.DataFrame, runs: list[jobs.Run]) -> str:
    """The size and a rough duration of the run ``config`` would start.

    The images are the run's own (:func:`cxr_core.data.resolve_splits`: the same split, limit
    and seed). The training speed of the newest run of the same backbone, scaled by the ratio
    of image areas, gives the time of training, validation and finishing
    (:func:`cxr_core.progress.remaining_seconds`); without such a run only the size is given.

    Raises:
        DataError: The dataset cannot train (no train split, a class missing).
    """
    from cxr_core.plan import run_workload
    from cxr_core.progress import remaining_seconds

    train, val, _ = data.resolve_splits(table, config.data)
    work = run_workload(config, len(train), len(val))
    text = (
        f"{len(train)} training images x {work.total_epochs} epochs, {len(val)} validation images"
    )
    for run in runs:
        rate = run.status.images_per_second
        if run.config is None or run.config.model.backbone != config.model.backbone or not rate:
            continue
        scaled = rate * (run.config.model.image_size / config.model.image_size) ** 2
        seconds = remaining_seconds(work, 1, 0, scaled)
        return (
            f"{text}: roughly {format_seconds(seconds)} at ~{scaled:.0f} training images/s (the "
            f"speed of run {md(run.name)}), plus ~20 s to start."
        )
    return f"{text}; the first run of this backbone measures the speed for an estimate."


def runs_table(runs: list[jobs.Run]) -> pd.DataFrame:
    """One row per run (newest first): settings, progress and validation metrics."""
    rows = []
    for run in runs:
        model = run.config.model if run.config else None
        summary = run.status.summary
        metrics = summary.metrics if summary else None
        rows.append(
            {
                "run": run.name,
                "state": str(run.state),
                "backbone": model.backbone if model else None,
                "image size": model.image_size if model else None,
                "epochs": len(run.history),
                **{
                    name: metrics.value(key) if metrics else None
                    for key, name in (
                        ("roc_auc", "val AUC"),
                        ("accuracy", "accuracy"),
                        ("sensitivity", "sensitivity"),
                        ("specificity", "specificity"),
                    )
                },
                "threshold": summary.threshold if summary else None,
                "started": (run.status.started_at or "").replace("T", " ")[:16],
            }
        )
    return pd.DataFrame(rows).round(3)

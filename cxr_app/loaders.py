"""The app's cached loaders: models and predictors, an upload's analysis, dataset scans and audits.

Models and TensorFlow load once per process (``cxr_app.serving.model_pool``, keyed by path and
file time, so a retrained model is picked up; warmed up in the background from the first
page); tables and audits are cached with ``st.cache_data``, an upload's analysis by content
and model (:func:`analyse_upload`). Nothing here imports TensorFlow before a page needs a model:
Home, Dataset and the Train monitor read JSON sidecars and folders only
(``tests/app/test_app_speed.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import streamlit as st

from cxr_app.access import checked_folder
from cxr_core.data import audit
from cxr_core.data import tables as data
from cxr_core.errors import JobError
from cxr_core.sidecar import ModelMetadata

if TYPE_CHECKING:  # imported only for annotations: Home must not load the model code
    from cxr_app.catalog import ModelEntry
    from cxr_core.distributed.devices import DeviceSummary
    from cxr_core.inference.upload import UploadAnalysis

__all__ = [
    "ANALYSIS_WAIT_SECONDS",
    "DISPLAY_SIDE",
    "MAX_CACHED_ANALYSES",
    "MAX_CONCURRENT_ANALYSES",
    "METHODS",
    "analyse_upload",
    "audit_dataset",
    "device_summary",
    "heatmap_view",
    "load_model",
    "predictor",
    "scan_dataset",
]

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

# ---------------------------------------------------------------------------------------------
# Models


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


# ---------------------------------------------------------------------------------------------
# Uploads


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
# Devices and data


@st.cache_resource(show_spinner=False)
def device_summary() -> DeviceSummary:
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

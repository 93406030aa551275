"""The app's side of serving: one model pool for the process, the warm-up, the loading state.

- :func:`model_pool`: the process's :class:`cxr_core.inference.serving.ModelPool`; every page gets
its
  models, predictors and inference workers there, so each model loads once and all sessions'
  uploads queue through one worker that batches them.
- :func:`start_warm_up`: called after every page run (once per session does anything). Once
  the server has drawn any page - Home renders at once without TensorFlow - a background thread
  imports TensorFlow, loads the default model and traces its Diagnose steps, so a visitor who
  goes on to Diagnose finds it ready. ``CXR_WARM_UP=0`` turns it off (the tests do).
- :func:`loading_ui`: what Diagnose shows while the model loads: a short "loading the model"
  state under an uploader that works at once, replaced by the page when the model is ready.
"""

from __future__ import annotations

import os
import threading
import time

import streamlit as st

from cxr_app import catalog, texts
from cxr_core.inference.serving import ModelPool, Served, WarmState

__all__ = [
    "WARM_UP_ENV",
    "loading_ui",
    "model_pool",
    "page_drawn",
    "served",
    "served_or_stop",
    "start_warm_up",
    "warm",
    "warm_up_enabled",
]

#: ``0`` turns the background warm-up off.
WARM_UP_ENV = "CXR_WARM_UP"
_STARTED = "_warm_up_started"
#: How long a warm-up waits for the first page run to end, and then for its messages to leave.
FIRST_PAGE_WAIT_S, FLUSH_S = 3.0, 2.0
_PAGE_DRAWN = threading.Event()
_POOL_LOCK = threading.Lock()
_POOL: list[ModelPool] = []


def model_pool() -> ModelPool:
    """The process's model pool (made on first use)."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ModelPool())
        return _POOL[0]


def served(entry: catalog.ModelEntry) -> Served:
    """The entry's loaded model, predictor and worker; waits while it loads.

    Raises:
        CXRError: The model cannot be loaded.
    """
    return model_pool().get(entry.path, entry.mtime)


def served_or_stop(entry: catalog.ModelEntry) -> Served:
    """:func:`served` under a "Loading the model..." spinner; a model that cannot be loaded
    gets one error line and stops the page."""
    from cxr_core.errors import CXRError

    try:
        with st.spinner("Loading the model..."):
            return served(entry)
    except CXRError as error:
        st.error(f"The model {texts.md(entry.label)} cannot be used: {texts.md(error)}")
        st.stop()


def warm(entry: catalog.ModelEntry) -> WarmState:
    """Start loading ``entry`` in the background if nothing has; where it stands. The load
    waits for the page that asked to be drawn (:func:`page_drawn`)."""
    return model_pool().warm(entry.path, entry.mtime, before_load=_after_the_page)


def page_drawn() -> None:
    """Say that a page run has finished (``cxr_app.navigation.run_app`` calls it after each)."""
    _PAGE_DRAWN.set()


def _after_the_page() -> None:
    # While TensorFlow imports and the model loads, the server's event loop barely runs (a
    # health check took 2.6-3.8 s): a first visitor's /diagnose showed its title at 2.7 s but
    # its uploader only at 9-18 s, because the browser fetches each widget's script from the
    # server as the page arrives. So wait until a page run has ended (at most
    # FIRST_PAGE_WAIT_S), then FLUSH_S for its messages and those scripts to leave; measured:
    # uploader at 2.8-3.7 s.
    _PAGE_DRAWN.wait(FIRST_PAGE_WAIT_S)
    time.sleep(FLUSH_S)


def start_warm_up() -> None:
    """Once per session (the first does the work), start loading the default model in the
    background, unless ``CXR_WARM_UP=0``. Costs no TensorFlow import on this thread."""
    if not warm_up_enabled() or st.session_state.get(_STARTED):
        return
    st.session_state[_STARTED] = True
    entry = catalog.active_model(catalog.discover_models())
    if entry is not None and entry.problem is None:
        warm(entry)


@st.fragment(run_every=0.5)
def _wait_for(entry: catalog.ModelEntry, since: float) -> None:
    if model_pool().state(entry.path, entry.mtime) is WarmState.LOADING:
        st.info(
            f"Loading the model ({time.monotonic() - since:.0f} s): TensorFlow and the model "
            "load once after the server starts. You can choose files meanwhile.",
            icon=":material/hourglass_top:",
        )
        return
    st.rerun()  # the whole page, now with the model ready


def warm_up_enabled() -> bool:
    """Whether models load in the background (``CXR_WARM_UP`` is not ``0``)."""
    return os.environ.get(WARM_UP_ENV, "1") != "0"


def loading_ui(entry: catalog.ModelEntry) -> bool:
    """Start loading ``entry`` and, while it loads, show the loading state (refreshed until
    the model is ready, then the page reruns). True when the model is ready or failed, or
    when the warm-up is off (the caller then loads it in place: :func:`served_or_stop`)."""
    if not warm_up_enabled() or warm(entry) is not WarmState.LOADING:
        return True
    key = f"_loading_since_{entry.path}"
    since = st.session_state.setdefault(key, time.monotonic())
    _wait_for(entry, since)
    return False

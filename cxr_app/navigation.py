"""The app's pages and navigation, defined once for ``streamlit_app.py`` and every page script.

Streamlit serves a fresh server's first session in its older multipage mode while a ``pages/``
folder sits beside the main script, until ``st.navigation`` has run once in the process. In that
mode a deep link such as ``/diagnose`` runs ``pages/diagnose.py`` directly, under a sidebar of
file names. Every page therefore calls :func:`ensure_app_navigation` first: in the older mode it
builds the app's own navigation (titles, icons, sidebar) and runs the requested page through it.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

import cxr_app.runner_patch  # noqa: F401  (applied on import: every page imports this module)

#: The page icon, served by the app itself.
ICON = Path(__file__).resolve().parents[1] / "assets" / "icon.png"

log = logging.getLogger("cxr_app")
if not log.handlers:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.propagate = False


@dataclass(frozen=True)
class PageSpec:
    """One page: its script under ``pages/``, its title and its Material icon."""

    script: str
    title: str
    icon: str
    summary: str


PAGE_SPECS: tuple[PageSpec, ...] = (
    PageSpec(
        "pages/home.py", "Home", ":material/home:", "what this app is and the model's numbers"
    ),
    PageSpec(
        "pages/diagnose.py",
        "Diagnose",
        ":material/image_search:",
        "score X-rays and see Grad-CAM heatmaps",
    ),
    PageSpec(
        "pages/dataset.py",
        "Dataset",
        ":material/dataset:",
        "counts, class balance, samples and an audit",
    ),
    PageSpec(
        "pages/train.py",
        "Train",
        ":material/model_training:",
        "train a model in the background and watch it",
    ),
    PageSpec(
        "pages/evaluate.py",
        "Evaluate",
        ":material/analytics:",
        "ROC, calibration, thresholds and errors",
    ),
)


def app_pages() -> list[st.Page]:
    """The navigation's pages, Home first and default; URLs are the script names."""
    return [
        st.Page(spec.script, title=spec.title, icon=spec.icon, default=index == 0)
        for index, spec in enumerate(PAGE_SPECS)
    ]


def in_older_multipage_mode() -> bool:
    """Whether Streamlit is running a page script directly (its ``pages/``-folder mode)."""
    return bool(PagesManager.uses_pages_directory)


def run_app() -> None:
    """Set up the page, build the navigation and run the chosen page.

    An unexpected error on a page is logged server-side with a short id, and the page shows only
    that id; ``CXR_RAISE_ERRORS=1`` lets errors through instead, for tests and debugging.
    """
    from cxr_app.access import admin_login_ui
    from cxr_app.texts import DISCLAIMER

    # A local icon: a Material icon name made every page load fetch it from a font server.
    st.set_page_config(page_title="CXR Pneumonia Lab", page_icon=str(ICON), layout="wide")
    page = st.navigation(app_pages())
    st.sidebar.caption(DISCLAIMER)
    try:
        admin_login_ui()
        page.run()
    except Exception:  # st.stop and st.rerun are BaseExceptions and pass through
        if os.environ.get("CXR_RAISE_ERRORS"):
            raise
        error_id = uuid.uuid4().hex[:8]
        log.exception("error %s on page %s", error_id, page.title)
        st.error(
            f"Something went wrong on this page (error id {error_id}). Please try again; the "
            "details are in the server log under that id."
        )
    finally:
        _start_warm_up_after_the_page()


def _start_warm_up_after_the_page() -> None:
    """Say the page is drawn, then start loading TensorFlow and the default model in the
    background (the load itself waits for the page's messages to leave:
    :func:`cxr_app.serving.warm`)."""
    from cxr_app.serving import page_drawn, start_warm_up

    page_drawn()
    try:
        start_warm_up()
    except Exception:  # a model folder that cannot be read: the pages say so themselves
        log.exception("the background warm-up could not start")


def ensure_app_navigation() -> None:
    """First call of every page script: hand over to :func:`run_app` in the older mode.

    Under the app's own navigation this returns at once. Run directly by Streamlit's older
    multipage mode (a deep link as a fresh server's first request), it builds the navigation,
    which runs this same page script through it, and then stops the outer run.
    """
    if in_older_multipage_mode():
        run_app()
        st.stop()

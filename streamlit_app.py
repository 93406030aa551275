"""CXR Pneumonia Lab: ``streamlit run streamlit_app.py``.

Builds the navigation over the pages in ``app_pages/``; every page is a short script that calls
``cxr_core`` through the cached helpers of ``app_support``. The folder is not named ``pages/``:
beside the main script, that name switches a fresh Streamlit server into its older multipage
mode, whose first page view is blank. Research demo only.

An unexpected error on a page is logged server-side with a short id, and the page shows only
that id (``client.showErrorDetails = "none"`` in ``.streamlit/config.toml`` hides what is not
caught here). ``CXR_RAISE_ERRORS=1`` lets errors through instead, for tests and debugging.
"""

import logging
import os
import uuid

import streamlit as st

from app_access import admin_login_ui
from app_support import DISCLAIMER

log = logging.getLogger("cxr_app")
if not log.handlers:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.propagate = False

st.set_page_config(
    page_title="CXR Pneumonia Lab", page_icon=":material/pulmonology:", layout="wide"
)

pages = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/diagnose.py", title="Diagnose", icon=":material/image_search:"),
    st.Page("app_pages/dataset.py", title="Dataset", icon=":material/dataset:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
]
page = st.navigation(pages)
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

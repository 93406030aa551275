"""Diagnose: upload X-rays, get the model's output with Grad-CAM, download reports."""

import streamlit as st

from cxr_app import catalog, loaders, texts
from cxr_app import diagnose as ui
from cxr_app import navigation as app_nav
from cxr_app import serving as app_serving
from cxr_core.errors import CXRError
from cxr_core.explain.heatmap import DEFAULT_OPACITY

app_nav.ensure_app_navigation()

st.title("Diagnose")
texts.disclaimer()

entries = catalog.discover_models()
entry = catalog.model_picker(entries)
method = st.sidebar.radio("Explanation", list(loaders.METHODS), horizontal=True)
alpha = st.sidebar.slider(
    "Heatmap opacity",
    0.0,
    1.0,
    DEFAULT_OPACITY,
    0.05,
    help="Opacity of the strongest areas; weak areas stay transparent so the film shows.",
)
if entry is None:
    st.info(catalog.no_model_message())
    st.stop()
try:
    catalog.model_metadata(entry)
except CXRError as error:
    st.error(f"The model {texts.md(entry.label)} cannot be used: {texts.md(error)}")
    st.stop()

ready = app_serving.loading_ui(entry)  # a fresh server: "loading the model" meanwhile
if ready:
    app_serving.served_or_stop(entry)
uploads = ui.upload_ui()
if uploads:
    app_serving.served_or_stop(entry)  # waits for the model if it is still loading
    ui.take_upload(entry, uploads)  # keeps the results, drops the bytes, reruns
if not ui.shown_ui(entry, method, alpha) and ready:
    st.info("Upload one or more frontal chest X-rays to see the model's output and heatmap.")

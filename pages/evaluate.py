"""Evaluate: a model's metrics with intervals, curves, stress suite and mistakes on an image set."""

import streamlit as st

from cxr_app import access, catalog, environment, gallery, site, texts
from cxr_app import evaluate as ui
from cxr_app import faithfulness as faith
from cxr_app import navigation as app_nav
from cxr_core.errors import CXRError

app_nav.ensure_app_navigation()

st.title("Evaluate")
entries = catalog.discover_models()
entry = catalog.model_picker(entries)
root = access.dataset_folder_ui(
    "Dataset folder", "eval_root", environment.default_data_root(), st.sidebar
)
size = access.sample_size_ui(st.sidebar)
log_fpr = st.sidebar.toggle("ROC: log false-positive axis", help="Spreads out the top-left corner.")
if entry is None:
    st.info(catalog.no_model_message())
    st.stop()
if entry.problem:
    st.error(f"The model {texts.md(entry.label)} cannot be used: {texts.md(entry.problem)}")
    st.stop()
if not root:
    st.info("Type a dataset folder in the sidebar to evaluate on.")
    st.markdown(texts.DATASET_GUIDE)
    st.stop()
try:
    with access.scoring_slot():  # visitors: the server's bounded queue, one job each
        chosen, table, scores = ui.scores_ui(root, entry, size)  # "Images" picker, scores
except CXRError as error:
    st.error(texts.md(error))
    st.stop()
(st.warning if chosen.optimistic else st.info)(texts.md(chosen.note))
y = table["label_index"].to_numpy()

threshold, stored, prevalence = ui.threshold_ui(entry, y, chosen.key)
try:
    point = ui.operating_point(y, scores, threshold, stored, prevalence)
except CXRError as error:
    st.warning(texts.md(error))
    st.stop()

ui.metrics_ui(point, len(table), len(chosen.table))
ui.curves_ui(entries, entry, point, table, log_fpr)

st.subheader("Uncertain answers: coverage and risk")
site.uncertainty_section(catalog.model_metadata(entry), y, scores, threshold)

st.subheader("Fit this model to this dataset")
site.fit_section(entry, root, table, chosen.optimistic)

st.subheader("Stress suite: the validation split under shift")
ui.stress_section(catalog.model_metadata(entry))

st.subheader("Predictions")
st.download_button(
    "Download every image's prediction (CSV)",
    gallery.per_image_csv(table, scores, threshold, entry.name),
    f"predictions_{entry.name}_{chosen.key}.csv",
    "text/csv",
    on_click="ignore",
)
gallery.gallery(entry, table, y, scores, threshold)

st.subheader("Do the heatmaps say anything about the model?")
faith.faithfulness_ui(entry, table)

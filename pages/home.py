"""Home: what the app is for, the disclaimer, and the status of model, data and devices.

Home reads the model's JSON sidecar, the dataset folder and the NVIDIA driver only: it never
imports TensorFlow, so a fresh server answers in about a second (benchmarks/app_latency.py).
"""

from pathlib import Path

import streamlit as st

from cxr_app import access, catalog, display, environment, loaders, texts
from cxr_app import home as app_home
from cxr_app import navigation as app_nav
from cxr_core.data.tables import count_table
from cxr_core.errors import CXRError
from cxr_core.evaluation.model_card import (
    format_metric,
    headline_metrics,
    render_model_card,
    robustness_lines,
)

app_nav.ensure_app_navigation()

st.title("CXR Pneumonia Lab")
st.markdown(
    "An interactive research demo of pneumonia detection on paediatric chest X-rays: a Keras "
    "classifier scores an image, Grad-CAM shows which regions drove the score, and you can "
    "inspect the data, train your own model and measure it honestly, all without code."
)
st.warning(
    f"**{texts.DISCLAIMER}** It gives a probability from a model trained on one public dataset "
    "(Kermany et al. 2018, Guangzhou). It has not been validated for any patient, site or "
    "device and must not inform care."
)

entries = catalog.discover_models()
entry = catalog.model_picker(entries)
if entry is not None and entry.problem is None:
    app_home.headline_ui(catalog.model_metadata(entry))
model_col, data_col, device_col = st.columns(3)

with model_col:
    st.subheader("Model")
    if entry is None:
        st.info(catalog.no_model_message())
    elif entry.problem:
        st.error(f"The model {texts.md(entry.label)} cannot be used: {texts.md(entry.problem)}")
    else:
        meta = catalog.model_metadata(entry)
        st.markdown(f"**{texts.md(entry.label)}**")
        details = f"{texts.md(entry.details)}; " if entry.details else ""
        st.caption(f"{details}threshold {meta.threshold:.3f} on the PNEUMONIA probability")
        st.markdown("Validation figures (**flattering**: carved from the training hospital)")
        for name, (value, interval) in headline_metrics(meta).items():
            if value is None:
                continue
            extra = f" (95% CI {interval[0]:.3f}-{interval[1]:.3f})" if interval else ""
            st.markdown(f"{name}: {format_metric(value)}{extra}")
        if meta.validation:
            st.caption(
                f"Validation (carved from train, flatters every model): {texts.md(meta.validation)}"
            )
        for line in robustness_lines(meta):
            st.text(line)
        for check in meta.independent_checks:
            st.caption(f"Earlier note: {texts.md(check)}")
        if not meta.metrics.values:
            st.caption("This model's metadata holds no validation metrics.")

with data_col:
    st.subheader("Dataset")
    root = environment.default_data_root()
    if not root:
        st.info("No dataset found. Set `CXR_DATA` or see the Dataset page for how to get one.")
    else:
        try:
            table = loaders.scan_dataset(root)
            if access.may_administer():  # visitors never see the server's folders
                st.text(root)
            st.dataframe(display.display_table(count_table(table)))
        except CXRError as error:
            where = f" at {texts.md(root)}" if access.may_administer() else ""
            st.error(f"The dataset{where} cannot be used: {texts.md(error)}")

with device_col:
    st.subheader("Devices")
    devices = loaders.device_summary()
    st.markdown(f"Accelerators: **{texts.md(devices.summary)}**")
    for gpu in devices.gpus:
        memory = f"{gpu.memory_gb} GiB" if gpu.memory_gb else "memory unknown"
        st.caption(f"{texts.md(gpu.name)} - {memory}")
    if not devices.gpus:
        st.caption("Training runs on the CPU: choose small images and few epochs.")
    st.caption("As the NVIDIA driver lists them; every run records what TensorFlow used.")

if entry is not None and entry.problem is None:
    with st.expander("Model card (rendered from the model's metadata)"):
        st.markdown(render_model_card(catalog.model_metadata(entry), name=Path(entry.path).stem))

st.subheader("What you can do")
for spec in app_nav.PAGE_SPECS[1:]:
    st.page_link(spec.script, label=f"{spec.title}: {spec.summary}", icon=spec.icon)

"""Diagnose: upload X-rays, get the model's output with Grad-CAM, download reports."""

import pandas as pd
import streamlit as st

import app_nav
import app_support as app
from cxr_core.errors import CXRError
from cxr_core.gradcam import overlay
from cxr_core.report import render_report, report_filename

app_nav.ensure_app_navigation()

st.title("Diagnose")
app.disclaimer()

entries = app.discover_models()
entry = app.model_picker(entries)
method = st.sidebar.radio("Explanation", list(app.METHODS), horizontal=True)
alpha = st.sidebar.slider("Heatmap opacity", 0.0, 1.0, 0.4, 0.05)
if entry is None:
    st.info(app.no_model_message())
    st.stop()
try:
    app.model_metadata(entry)
    app.predictor(entry)
except CXRError as error:
    st.error(f"The model {app.md(entry.label)} cannot be used: {app.md(error)}")
    st.stop()

uploads = st.file_uploader(
    f"Drop chest X-rays here (JPEG, PNG or DICOM; up to {app.MAX_FILES_PER_UPLOAD} at once)",
    accept_multiple_files=True,
    max_upload_size=app.MAX_UPLOAD_MB,
)
if not uploads:
    st.info("Upload one or more frontal chest X-rays to see the model's output and heatmap.")
    st.stop()
if len(uploads) > app.MAX_FILES_PER_UPLOAD:
    st.warning(
        f"{len(uploads)} files were uploaded; the first {app.MAX_FILES_PER_UPLOAD} are analysed. "
        "Remove some to see the others."
    )
    uploads = uploads[: app.MAX_FILES_PER_UPLOAD]

results, rows = [], []
for upload in uploads:
    try:
        result = app.analyse_upload(entry, upload.getvalue(), upload.name, method)
    except CXRError as error:
        st.error(f"**{app.md(upload.name)}** could not be analysed: {app.md(error)}")
        rows.append({"file": upload.name, "model output": "", "error": str(error)})
        continue
    results.append((upload.name, result))
    accepted = result["accepted"]
    rows.append(
        {
            "file": upload.name,
            "model output": result["label"] if accepted else "no verdict (not a chest X-ray?)",
            "probability of pneumonia": round(result["probability"], 3) if accepted else None,
            "threshold": round(result["threshold"], 3),
            "error": "" if accepted else result["refusal"],
        }
    )

if len(uploads) > 1:
    table = pd.DataFrame(rows)
    st.subheader(f"Results for {len(uploads)} files")
    st.dataframe(table, hide_index=True)
    st.download_button(
        "Download results (CSV)", table.to_csv(index=False), "cxr_results.csv", "text/csv"
    )

for index, (name, result) in enumerate(results):
    label, probability, threshold = result["label"], result["probability"], result["threshold"]
    st.divider()
    if not result["accepted"]:
        st.text(name)
        st.warning(result["refusal"], icon=":material/block:")
        anyway = st.checkbox(
            "Score it anyway (research use only: a verdict on an image unlike the training "
            "X-rays means nothing)",
            key=f"anyway_{index}",
        )
        if not anyway:
            st.image(result["pixels"], caption="Original - no verdict, no heatmap", width=360)
            continue
        label = f"{label} (input check refused this image)"
    colour = "red" if label.startswith("PNEUMONIA") else "green"
    relation = "at or above" if probability >= threshold else "below"
    st.markdown(f"#### {app.md(name)}: model output :{colour}[**{app.md(label)}**]")
    st.markdown(
        f"Probability of pneumonia **{probability:.3f}**, {relation} the model's threshold "
        f"**{threshold:.3f}**. *{app.DISCLAIMER}*"
    )
    blended = overlay(result["pixels"], result["heatmap"], alpha=alpha)
    left, right = st.columns(2)
    left.image(result["pixels"], caption="Original", width="stretch")
    right.image(
        blended,
        caption=f"{method} overlay (red: regions that drove {app.md(label)})",
        width="stretch",
    )
    report = render_report(
        result["pixels"],
        blended,
        filename=name,
        label=label,
        probability=probability,
        threshold=threshold,
        model_name=entry.label,
        method=method,
    )
    st.download_button(
        "Download report (PNG)", report, report_filename(name), "image/png", key=f"report_{index}"
    )
    with st.expander("Technical fields"):
        # A dataframe shows cells as text; st.table would render Markdown in DICOM fields.
        st.dataframe(
            pd.DataFrame(
                {"value": [str(v) for v in result["info"].values()]}, index=list(result["info"])
            )
        )

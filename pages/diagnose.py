"""Diagnose: upload X-rays, get the model's output with Grad-CAM, download reports."""

from functools import partial

import pandas as pd
import streamlit as st

import app_nav
import app_support as app
from cxr_core.errors import CXRError
from cxr_core.heatmap import DEFAULT_OPACITY, colour_bar
from cxr_core.report import render_report, report_filename

app_nav.ensure_app_navigation()


def refused(index: int, name: str, result: dict) -> bool:
    """An image the input check refused: its name, the one-sentence refusal and the X-ray, no
    verdict or heatmap; True when the user ticks "Score it anyway"."""
    st.text(name)
    st.warning(result["refusal"], icon=":material/block:")
    anyway = st.checkbox(
        "Score it anyway (research use only: a verdict on an image unlike the training "
        "X-rays means nothing)",
        key=f"anyway_{index}",
    )
    if not anyway:
        st.image(result["pixels"], caption="Original - no verdict, no heatmap", width=360)
    return anyway


def show(index: int, name: str, result: dict, method: str, alpha: float, model: str) -> None:
    """One analysed file: verdict, probability, threshold, X-ray, overlay, legend, report."""
    label, probability, threshold = result["label"], result["probability"], result["threshold"]
    if not result["accepted"]:
        if not refused(index, name, result):
            return
        label = f"{label} (input check refused this image)"
    colour = "red" if label.startswith("PNEUMONIA") else "green"
    relation = "at or above" if probability >= threshold else "below"
    st.markdown(f"#### {app.md(name)}: model output :{colour}[**{app.md(label)}**]")
    st.markdown(
        f"Probability of pneumonia **{probability:.3f}**, {relation} the model's threshold "
        f"**{threshold:.3f}**. *{app.DISCLAIMER}*"
    )
    blended = app.heatmap_view(result, method, alpha)  # cached maps: no model call
    left, right = st.columns(2)
    left.image(result["pixels"], caption="Original", width="stretch")
    right.image(blended, caption=f"{method} overlay", width="stretch")
    right.image(colour_bar(512, 20, alpha=alpha), width="stretch")
    right.caption(
        f"Low → high contribution to the {app.md(label.split(' (')[0])} output; low values "
        "are transparent, the strongest reach the chosen opacity."
    )
    # Drawn only when clicked (a callable), so moving the slider does not redraw reports.
    report = partial(
        render_report, result["pixels"], blended, filename=name, label=label,
        probability=probability, threshold=threshold, model_name=model, method=method,
        opacity=alpha,
    )  # fmt: skip
    st.download_button(
        "Download report (PNG)", report, report_filename(name), "image/png",
        key=f"report_{index}", on_click="ignore",
    )  # fmt: skip
    with st.expander("Technical fields"):
        # A dataframe shows cells as text; st.table would render Markdown in DICOM fields.
        st.dataframe(app.technical_fields(result["info"]), hide_index=True)


st.title("Diagnose")
app.disclaimer()

entries = app.discover_models()
entry = app.model_picker(entries)
method = st.sidebar.radio("Explanation", list(app.METHODS), horizontal=True)
alpha = st.sidebar.slider(
    "Heatmap opacity",
    0.0,
    1.0,
    DEFAULT_OPACITY,
    0.05,
    help="Opacity of the strongest areas; weak areas stay transparent so the film shows.",
)
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
        result = app.analyse_upload(entry, upload.getvalue(), upload.name)
    except CXRError as error:
        st.error(f"**{app.md(upload.name)}** could not be analysed: {app.md(error)}")
        result = None
    else:
        results.append((upload.name, result))
    rows.append(app.result_row(upload.name, result))

if len(uploads) > 1:
    table = pd.DataFrame(rows)
    st.subheader(f"Results for {len(uploads)} files")
    st.dataframe(table, hide_index=True, width="stretch")
    st.download_button(
        "Download results (CSV)", table.to_csv(index=False), "cxr_results.csv", "text/csv"
    )
if len(results) > 1:
    # One tab per image: the table above is the overview, each tab the full view.
    short = [name if len(name) <= 28 else f"{name[:26]}…" for name, _ in results]
    places = st.tabs([f"{i}. {app.md(name)}" for i, name in enumerate(short, 1)])
else:
    places = [st.container()]
for index, ((name, result), place) in enumerate(zip(results, places, strict=True)):
    with place:
        show(index, name, result, method, alpha, entry.label)

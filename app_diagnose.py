"""The Diagnose page's parts: the upload, the analysis of each file and how a result is shown.

The analysis itself (:func:`app_support.analyse_upload`, cached by content and model) and the
overlay (:func:`app_support.heatmap_view`) are shared with the Evaluate page's gallery; this
module holds what only Diagnose draws: the results table, one view per file with its report,
the technical fields, and :func:`view_change_seconds` for ``benchmarks/``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

import app_support as app
from cxr_core.conformal import UNCERTAIN
from cxr_core.errors import CXRError
from cxr_core.heatmap import colour_bar
from cxr_core.report import render_report, report_filename

__all__ = [
    "FIELD_NAMES",
    "MAX_FILES_PER_UPLOAD",
    "MAX_UPLOAD_MB",
    "UNCERTAIN_SENTENCE",
    "analyse_ui",
    "first_files",
    "result_row",
    "results_ui",
    "show",
    "technical_fields",
    "upload_ui",
    "view_change_seconds",
]

#: What an UNCERTAIN verdict says (issue 16).
UNCERTAIN_SENTENCE = (
    "UNCERTAIN: both NORMAL and PNEUMONIA are plausible at 95% confidence: a clinician should "
    "read this film."
)
#: Files of one upload that the Diagnose page analyses; the others are listed, not decoded.
MAX_FILES_PER_UPLOAD = 12
#: The uploader's limit, in Streamlit's decimal megabytes: 53 MB lets through every file
#: that cxr_core.imaging accepts (50 MiB = 52.4 MB); imaging refuses larger ones itself.
MAX_UPLOAD_MB = 53

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

    ``result`` is :func:`app_support.analyse_upload`'s, or None for a file that could not be
    read (its message is shown in full beside the table). A refused image's probability is
    withheld.
    """
    if result is None:
        return {
            "File": name, "Model output": "not analysed", "Probability of pneumonia": "-",
            "Threshold": "-", "Input check": "unreadable file (message above)",
        }  # fmt: skip
    accepted = result["accepted"]
    grade = result.get("grade", "typical")
    check = "unusual: verdict less reliable" if grade == "unusual" else "typical"
    return {
        "File": name,
        "Model output": result.get("decision", result["label"]) if accepted else "no verdict",
        "Probability of pneumonia": f"{result['probability']:.3f}" if accepted else "-",
        "Threshold": f"{result['threshold']:.3f}",
        "Input check": check if accepted else "refused: unlike the training X-rays",
    }


def view_change_seconds(
    predictor: Any, content: bytes, name: str, repeats: int = 5
) -> dict[str, float]:
    """Time the Diagnose page's image work for one upload (for ``benchmarks/``).

    Returns:
        ``analyse_s``: decoding and one forward and one backward pass for both maps (what a
        new upload costs); ``opacity_s``: median of ``repeats`` blends of the shown map at a
        new opacity; ``method_s``: median of ``repeats`` switches to the other method's cached
        map. Neither change calls the model: :func:`app_support.heatmap_view` is all the page
        redoes.
    """
    import time

    def median_seconds(views: list[tuple[str, float]]) -> float:
        times = []
        for method, alpha in views:
            start = time.perf_counter()
            app.heatmap_view(result, method, alpha)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    start = time.perf_counter()
    result = app.analyse_bytes(predictor, content, name)
    analyse_s = time.perf_counter() - start
    opacities = [("Grad-CAM", 0.2 + 0.1 * (i % 7)) for i in range(repeats)]
    methods = [(("Grad-CAM++", "Grad-CAM")[i % 2], 0.6) for i in range(repeats)]
    return {
        "analyse_s": analyse_s,
        "opacity_s": median_seconds(opacities),
        "method_s": median_seconds(methods),
    }


# ---------------------------------------------------------------------------------------------
# Sections of the page


def upload_ui() -> list[Any]:
    """The file uploader (JPEG, PNG or DICOM, several at once); the files dropped, maybe none."""
    return st.file_uploader(
        f"Drop chest X-rays here (JPEG, PNG or DICOM; up to {MAX_FILES_PER_UPLOAD} at once, "
        "each at most 50 MiB)",
        accept_multiple_files=True,
        max_upload_size=MAX_UPLOAD_MB,
    )


def first_files(uploads: list[Any]) -> list[Any]:
    """The first :data:`MAX_FILES_PER_UPLOAD` uploads, with a warning when there were more."""
    if len(uploads) > MAX_FILES_PER_UPLOAD:
        st.warning(
            f"{len(uploads)} files were uploaded; the first {MAX_FILES_PER_UPLOAD} are "
            "analysed. Remove some to see the others."
        )
    return uploads[:MAX_FILES_PER_UPLOAD]


def analyse_ui(entry: app.ModelEntry, uploads: list[Any]) -> list[tuple[str, dict]]:
    """Analyse every upload (an unreadable one gets its message); with several files, a
    results table and its CSV download.

    Returns:
        ``(file name, result)`` of each file analysed, in upload order (see
        :func:`app_support.analyse_upload`).
    """
    results, rows = [], []
    for upload in uploads:
        try:
            result = app.analyse_upload(entry, upload.getvalue(), upload.name)
        except CXRError as error:
            st.error(f"**{app.md(upload.name)}** could not be analysed: {app.md(error)}")
            result = None
        else:
            results.append((upload.name, result))
        rows.append(result_row(upload.name, result))
    if len(uploads) > 1:
        table = pd.DataFrame(rows)
        st.subheader(f"Results for {len(uploads)} files")
        st.dataframe(table, hide_index=True, width="stretch")
        st.download_button(
            "Download results (CSV)", table.to_csv(index=False), "cxr_results.csv", "text/csv"
        )
    return results


def results_ui(results: list[tuple[str, dict]], method: str, alpha: float, model: str) -> None:
    """Each analysed file in full (:func:`show`): one tab per file when there are several.

    Nothing is drawn when no file could be analysed (each already has its message).
    """
    if not results:
        return
    if len(results) > 1:
        # One tab per image: the table above is the overview, each tab the full view.
        short = [name if len(name) <= 28 else f"{name[:26]}…" for name, _ in results]
        places = st.tabs([f"{i}. {app.md(name)}" for i, name in enumerate(short, 1)])
    else:
        places = [st.container()]
    for index, ((name, result), place) in enumerate(zip(results, places, strict=True)):
        with place:
            show(index, name, result, method, alpha, model)


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
    uncertain = result.get("decision") == UNCERTAIN
    if not result["accepted"]:
        if not refused(index, name, result):
            return
        label = f"{label} (input check refused this image)"
    elif uncertain:
        label = UNCERTAIN
    relation = "at or above" if probability >= threshold else "below"
    if uncertain and result["accepted"]:
        # Its own verdict in a neutral colour: never a red PNEUMONIA or a green NORMAL.
        st.markdown(f"#### {app.md(name)}: model output :gray[**{UNCERTAIN}**]")
        st.info(UNCERTAIN_SENTENCE, icon=":material/help:")
    else:
        colour = "red" if label.startswith("PNEUMONIA") else "green"
        st.markdown(f"#### {app.md(name)}: model output :{colour}[**{app.md(label)}**]")
    if result.get("warning"):
        st.warning(result["warning"], icon=":material/warning:")
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
        f"Low → high contribution to the {app.md(result['label'])} output; low values "
        "are transparent, the strongest reach the chosen opacity."
    )
    # Drawn only when clicked (a callable), so moving the slider does not redraw reports.
    report = partial(
        render_report, result["pixels"], blended, filename=name, label=label,
        probability=probability, threshold=threshold, model_name=model, method=method,
        opacity=alpha, note=result.get("warning") or "",
    )  # fmt: skip
    st.download_button(
        "Download report (PNG)", report, report_filename(name), "image/png",
        key=f"report_{index}", on_click="ignore",
    )  # fmt: skip
    with st.expander("Technical fields"):
        # A dataframe shows cells as text; st.table would render Markdown in DICOM fields.
        st.dataframe(technical_fields(result["info"]), hide_index=True)

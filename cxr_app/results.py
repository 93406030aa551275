"""How Diagnose shows its results: the results table and its CSV, one view per file with its
verdict, score scale, heatmap and report, the technical fields, and feedback.

:mod:`cxr_app.diagnose` takes an upload and keeps an analysis' results; this module draws them.
:func:`view_change_seconds` times the image work behind a view for ``benchmarks/``.
"""

from __future__ import annotations

import io
import zipfile
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import streamlit as st

from cxr_app import access, loaders, texts
from cxr_core.config import CLASS_NAMES
from cxr_core.errors import CXRError
from cxr_core.explain.report import render_report, report_filename
from cxr_core.explain.verdict import (
    HEATMAP_CAVEAT,
    blank_map_note,
    decision_words,
    heat_legend,
    score_scale,
    score_texts,
)
from cxr_core.stats.conformal import UNCERTAIN

if TYPE_CHECKING:
    from cxr_core.inference.upload import UploadAnalysis

__all__ = [
    "FIELD_NAMES",
    "UNCERTAIN_SENTENCE",
    "reports_zip",
    "result_row",
    "results_csv",
    "results_ui",
    "show",
    "technical_fields",
    "view_change_seconds",
]

#: What an UNCERTAIN verdict says (issue 16).
UNCERTAIN_SENTENCE = (
    "UNCERTAIN: both NORMAL and PNEUMONIA are plausible at 95% confidence: a clinician should "
    "read this film."
)
#: Human names of ``cxr_core.imaging.decode``'s technical fields; others get their key in words.
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


def result_row(name: str, result: UploadAnalysis | None) -> dict[str, str]:
    """One text row of the Diagnose page's results table (no empty cell).

    ``result`` is :func:`cxr_app.loaders.analyse_upload`'s, or None for a file that could not be
    read (its message is shown in full beside the table). A refused image's probability is
    withheld.
    """
    if result is None:
        return {
            "File": name, "Model output": "not analysed", "Probability of pneumonia": "-",
            "Threshold": "-", "Input check": "unreadable file (message above)",
        }  # fmt: skip
    accepted = result.accepted
    grade = result.grade
    check = "unusual: verdict less reliable" if grade == "unusual" else "typical"
    shown_p, shown_t = score_texts(result.probability, result.threshold)
    return {
        "File": name,
        "Model output": result.decision if accepted else "no verdict",
        "Probability of pneumonia": shown_p if accepted else "-",
        "Threshold": shown_t,
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
        map. Neither change calls the model: :func:`cxr_app.loaders.heatmap_view` is all the page
        redoes.
    """
    import time

    from cxr_core.inference.upload import analyse_upload

    def median_seconds(views: list[tuple[str, float]]) -> float:
        times = []
        for method, alpha in views:
            start = time.perf_counter()
            loaders.heatmap_view(result, method, alpha)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    start = time.perf_counter()
    result = analyse_upload(predictor, content, name)
    analyse_s = time.perf_counter() - start
    opacities = [("Grad-CAM", 0.2 + 0.1 * (i % 7)) for i in range(repeats)]
    methods = [(("Grad-CAM++", "Grad-CAM")[i % 2], 0.6) for i in range(repeats)]
    return {
        "analyse_s": analyse_s,
        "opacity_s": median_seconds(opacities),
        "method_s": median_seconds(methods),
    }


def results_csv(
    uploads: list[Any], rows: list[dict], results: dict[str, UploadAnalysis], model: str
) -> str:
    """The results table as CSV, with the model's name, the analysis time and the input
    check's distance and threshold for each file (no patient fields, no server paths)."""
    full = []
    for upload, row in zip(uploads, rows, strict=True):
        result = results.get(upload.name)  # None: the file could not be read
        distance = result.input_distance if result else None
        limit = result.input_threshold if result else None
        full.append({
            **row,
            "Model": model,
            "Analysed at (UTC)": result.analysed_at if result else "-",
            "Input-check distance": "-" if distance is None else f"{distance:.3f}",
            "Input-check threshold": "-" if limit is None else f"{limit:.3f}",
        })  # fmt: skip
    return pd.DataFrame(full).to_csv(index=False)


def reports_zip(
    results: list[tuple[str, UploadAnalysis]], method: str, alpha: float, model: str
) -> bytes:
    """A ZIP of every analysed file's PNG report (refused images are left out)."""
    buffer, used = io.BytesIO(), set()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # PNGs: already compressed
        for index, (name, result) in enumerate(results, 1):
            if not result.accepted:
                continue
            blended = loaders.heatmap_view(result, method, alpha)
            png = render_report(
                result.pixels, blended, filename=name,
                label=result.decision,
                probability=result.probability, threshold=result.threshold,
                model_name=model, method=method, opacity=alpha,
                note=result.warning or "",
            )  # fmt: skip
            entry = report_filename(name)
            if entry in used:
                entry = f"{index:02d}_{entry}"
            used.add(entry)
            archive.writestr(entry, png)
    return buffer.getvalue()


def results_ui(
    results: list[tuple[str, UploadAnalysis]], method: str, alpha: float, model: str
) -> None:
    """Each analysed file in full (:func:`show`): one tab per file when there are several.

    Nothing is drawn when no file could be analysed (each already has its message).
    """
    if not results:
        return
    if len(results) > 1:
        st.download_button(
            "Download all reports (ZIP)", partial(reports_zip, results, method, alpha, model),
            "cxr_reports.zip", "application/zip", on_click="ignore",
        )  # fmt: skip
        # One tab per image: the table above is the overview, each tab the full view.
        # Cut in the middle: the ends tell files apart (person1946_…_4874.jpeg).
        short = [name if len(name) <= 24 else f"{name[:11]}…{name[-12:]}" for name, _ in results]
        places = st.tabs([f"{i}. {texts.md(name)}" for i, name in enumerate(short, 1)])
    else:
        places = [st.container()]
    for index, ((name, result), place) in enumerate(zip(results, places, strict=True)):
        with place:
            show(index, name, result, method, alpha, model)


def refused(index: int, name: str, result: UploadAnalysis) -> bool:
    """An image the input check refused: its name, the one-sentence refusal and the X-ray, no
    verdict or heatmap; True when the user ticks "Score it anyway"."""
    st.text(name)
    st.warning(result.refusal, icon=":material/block:")
    anyway = st.checkbox(
        "Score it anyway (research use only: a verdict on an image unlike the training "
        "X-rays means nothing)",
        key=f"anyway_{index}",
    )
    if not anyway:
        st.image(result.pixels, caption="Original - no verdict, no heatmap", width=360,
                 alt=f"Uploaded image {name}, refused by the input check")  # fmt: skip
    return anyway


def verdict_ui(
    name: str,
    label: str,
    probability: float,
    threshold: float,
    uncertain: bool = False,
    warning: str | None = None,
) -> None:
    """The verdict of one image: its label in colour and in words (UNCERTAIN in grey, never
    red or green), an unusual X-ray's warning, the score against the threshold with enough
    decimals to tell them apart, and the score on a scale."""
    if uncertain:
        st.markdown(f"#### {texts.md(name)}: model output :gray[● **{UNCERTAIN}**]")
        st.info(UNCERTAIN_SENTENCE, icon=":material/help:")
    else:
        colour = "red" if label.startswith("PNEUMONIA") else "green"
        mark = "▲" if label.startswith("PNEUMONIA") else "▼"  # not colour only
        st.markdown(f"#### {texts.md(name)}: model output :{colour}[{mark} **{texts.md(label)}**]")
    if warning:
        st.warning(warning, icon=":material/warning:")
    shown_p, shown_t = score_texts(probability, threshold)
    relation = decision_words(probability, threshold)
    st.markdown(
        f"Probability of pneumonia **{shown_p}**, {relation} the model's threshold "
        f"**{shown_t}**. *{texts.DISCLAIMER}*"
    )
    scale = score_scale(probability, threshold, width=600)
    where = f"Score {shown_p} on a 0-1 scale, {relation} the threshold {shown_t}"
    # A column, not a fixed width: the scale fits a phone's screen (columns stack there).
    st.columns([3, 2])[0].image(scale, width="stretch", caption=where, alt=where)


def _save_feedback(folder: str, name: str, result: UploadAnalysis, label: str, model: str) -> None:
    from cxr_core.data.feedback import save_feedback

    try:
        save_feedback(folder, result.pixels, label, model_output=result.label,
                      probability=result.probability, model=model, file_name=name)  # fmt: skip
    except CXRError as error:
        st.toast(f"The feedback was not saved: {texts.md(error)}")
        return
    st.session_state[f"feedback_{name}"] = label
    st.toast(f"Saved: {texts.md(name)} as {label} in the feedback folder.")


def feedback_ui(index: int, name: str, result: UploadAnalysis, model: str) -> None:
    """A reader's say on this verdict, saved to the administrator's feedback folder."""
    folder = access.feedback_folder()
    if folder is None or not result.accepted:
        return
    given = st.session_state.get(f"feedback_{name}")
    output = result.label
    other = next(c for c in CLASS_NAMES if c != output)
    agree, correct = st.columns(2)
    agree.button(f"Agree: {output}", key=f"agree_{index}", on_click=_save_feedback,
                 args=(folder, name, result, output, model))  # fmt: skip
    correct.button(f"The right answer is {other}", key=f"correct_{index}",
                   on_click=_save_feedback, args=(folder, name, result, other, model))  # fmt: skip
    st.caption(
        ("Your answer: " + given + ". " if given else "")
        + "Answers are saved with the image (no patient fields) for fitting a model later."
    )


def show(
    index: int, name: str, result: UploadAnalysis, method: str, alpha: float, model: str
) -> None:
    """One analysed file: verdict, probability, threshold, X-ray, overlay, legend, report."""
    label, probability, threshold = result.label, result.probability, result.threshold
    uncertain = result.decision == UNCERTAIN
    if not result.accepted:
        if not refused(index, name, result):
            return
        label = f"{label} (input check refused this image)"
    elif uncertain:
        label = UNCERTAIN
    verdict_ui(
        name, label, probability, threshold,
        uncertain=uncertain and result.accepted, warning=result.warning,
    )  # fmt: skip
    feedback_ui(index, name, result, model)
    blended = loaders.heatmap_view(result, method, alpha)  # cached maps: no model call
    explained = result.label  # the maps explain the model's own output
    left, right = st.columns(2)
    left.image(result.pixels, caption=f"Original X-ray: {texts.md(name)}", width="stretch",
               alt=f"Chest X-ray {name} as the model saw it")  # fmt: skip
    described = f"{method} heatmap over {name}: regions that moved the {explained} score"
    right.image(blended, caption=f"{method} overlay for the {explained} output",
                width="stretch", alt=described)  # fmt: skip
    bar = "Colour bar: heat from 0 (transparent) to 1 (this image's strongest region)"
    right.image(heat_legend(512, alpha=alpha), width="stretch", caption=bar, alt=bar)
    note = blank_map_note(result.heatmaps.get(loaders.METHODS.get(method, method)))
    if note:
        right.info(note)
    right.caption(f"{HEATMAP_CAVEAT} Low values are transparent; the strongest reach the opacity.")
    # Drawn only when clicked (a callable), so moving the slider does not redraw reports.
    report = partial(
        render_report, result.pixels, blended, filename=name, label=label,
        probability=probability, threshold=threshold, model_name=model, method=method,
        opacity=alpha, note=result.warning or "",
    )  # fmt: skip
    st.download_button(
        "Download report (PNG)", report, report_filename(name), "image/png",
        key=f"report_{index}", on_click="ignore",
    )  # fmt: skip
    with st.expander("Technical fields"):
        # A dataframe shows cells as text; st.table would render Markdown in DICOM fields.
        st.dataframe(technical_fields(result.info), hide_index=True)

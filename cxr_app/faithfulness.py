"""The Evaluate page's faithfulness check: do the heatmaps say anything about the model?

On demand (a button; 20 images are 20 explanations and 1,320 forward passes), deletion and
insertion curves (Petsiuk et al. 2018) of Grad-CAM, Grad-CAM++ and a random map over a sample
of the chosen set, computed by :func:`cxr_core.evaluation.faithfulness.faithfulness_check`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from cxr_app import catalog, loaders, texts
from cxr_core.errors import CXRError
from cxr_core.evaluation.eval_sets import stratified_sample

__all__ = ["FAITHFULNESS", "faithfulness_ui"]

#: Session key of the last check: ``(key, result)``.
FAITHFULNESS = "eval_faithfulness"
_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "random": "random map"}


def _run(entry: catalog.ModelEntry, table: pd.DataFrame, steps: int) -> Any:
    from cxr_core.evaluation.faithfulness import faithfulness_check

    bar = st.progress(0.0, text="Explaining and re-scoring the sample...")

    def show(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Checked {done} of {total} images")

    result = faithfulness_check(loaders.predictor(entry), list(table["path"]), steps, progress=show)
    bar.empty()
    return result


def _curves_frame(result: Any) -> pd.DataFrame:
    frame = {"share of pixels": result.fractions}
    for method, curves in result.curves.items():
        for curve, values in curves.items():
            frame[f"{_NAMES[method]}, {curve}"] = values.mean(axis=0)
    return pd.DataFrame(frame).set_index("share of pixels")


def _verdicts(result: Any) -> list[str]:
    lines = []
    for method in ("gradcam", "gradcam++"):
        if result.beats_random(method):
            lines.append(
                f"{_NAMES[method]} beats the random map on both curves: the regions it marks "
                "do move this model's score."
            )
        else:
            lines.append(
                f"{_NAMES[method]} does not beat the random map on both curves here: on this "
                "sample its heatmaps say little about what the model uses."
            )
    return lines


def faithfulness_ui(entry: catalog.ModelEntry, table: pd.DataFrame) -> None:
    """Explain the check, run it when asked, and show its table, curves and verdict."""
    st.caption(
        "Deletion: the pixels a map ranks highest are blacked out first; the faster the score "
        "of the chosen class falls, the better (low area). Insertion: they are restored first "
        "onto a blurred copy; the faster it rises, the better (high area). A map no better "
        "than a random one says nothing about the model (Petsiuk et al. 2018, RISE)."
    )
    n_images = st.number_input("Images to check", 4, 100, 20, 4, key="faith_n")
    steps = 10
    key = (entry.path, entry.mtime, tuple(table["path"]), int(n_images), steps)
    if st.button("Run the faithfulness check", key="faith_run"):
        sample = stratified_sample(table, int(n_images), seed=0)
        try:
            st.session_state[FAITHFULNESS] = (key, _run(entry, sample, steps))
        except CXRError as error:
            st.error(f"The check could not run: {texts.md(error)}")
            return
    stored = st.session_state.get(FAITHFULNESS)
    if stored is None or stored[0] != key:
        return
    result = stored[1]
    rows = pd.DataFrame(result.table())
    rows["map"] = rows["map"].map(_NAMES)
    st.dataframe(rows, hide_index=True)
    st.line_chart(_curves_frame(result), x_label="share of pixels deleted or inserted",
                  y_label="probability of the chosen class")  # fmt: skip
    for line in _verdicts(result):
        st.text(line)
    st.caption(f"{len(result.files)} images, {steps} steps per curve.")

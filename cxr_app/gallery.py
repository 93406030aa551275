"""The Evaluate page's predictions: every image's prediction as CSV, and the gallery of mistakes.

:func:`gallery` shows the scored images of one kind (all, false positives, false negatives,
correct) as framed thumbnails, sorted by :func:`gallery_order` and paged; an image's button
opens its Grad-CAM above (:func:`explain_panel`, through the Diagnose page's cached analysis,
:func:`cxr_app.loaders.analyse_upload`). :func:`per_image_csv` is the page's CSV download.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from cxr_app import catalog, display, loaders, texts
from cxr_core.config import CLASS_NAMES
from cxr_core.errors import CXRError
from cxr_core.explain.verdict import decision_words, score_texts

__all__ = [
    "EXPLAIN",
    "GALLERY_ORDERS",
    "GALLERY_PAGE",
    "explain_panel",
    "gallery",
    "gallery_order",
    "per_image_csv",
]

EXPLAIN = "eval_explain"  # session key: the gallery image whose Grad-CAM is open


def explain_panel(entry: catalog.ModelEntry, path: str, label: str, threshold: float) -> None:
    """The Grad-CAM of one gallery image, beside the original."""
    method = st.radio("Explanation", list(loaders.METHODS), horizontal=True, key="eval_method")
    st.button("Close", key="eval_close", on_click=st.session_state.pop, args=(EXPLAIN, None))
    name = Path(path).name
    try:
        result = loaders.analyse_upload(entry, Path(path).read_bytes(), name)
    except (CXRError, OSError) as error:
        st.error(f"**{texts.md(name)}** could not be explained: {texts.md(error)}")
        return
    verdict = CLASS_NAMES[int(result.probability >= threshold)]
    shown_p, shown_t = score_texts(result.probability, threshold)
    st.markdown(
        f"**{texts.md(name)}** (true {label}): model output **{verdict}**, probability of "
        f"pneumonia **{shown_p}**, {decision_words(result.probability, threshold)} the "
        f"threshold **{shown_t}**. *{texts.DISCLAIMER}*"
    )
    left, right = st.columns(2)
    left.image(result.pixels, caption="Original", width="stretch",
               alt=f"Chest X-ray {name}, true {label}")  # fmt: skip
    right.image(loaders.heatmap_view(result, method, 0.6), caption=f"{method} overlay",
                width="stretch", alt=f"{method} heatmap over {name}")  # fmt: skip
    if not result.accepted:
        st.caption(f"Input check: {texts.md(result['refusal'])}")


def gallery(
    entry: catalog.ModelEntry,
    table: pd.DataFrame,
    y: np.ndarray,
    scores: np.ndarray,
    threshold: float,
) -> None:
    """Thumbnails of one kind of prediction, sorted and paged, each with a button that opens its
    Grad-CAM; right and wrong are said in words and marks as well as by the frame's colour."""
    kind_col, order_col = st.columns([3, 2])
    kind = kind_col.radio(
        "Show", ["all", "false positives", "false negatives", "correct"], horizontal=True
    )
    order = order_col.selectbox("Order", list(GALLERY_ORDERS), key="eval_order")
    predicted = (scores >= threshold).astype(int)
    wanted = {
        "all": np.ones_like(y, bool),
        "false positives": (predicted == 1) & (y == 0),
        "false negatives": (predicted == 0) & (y == 1),
        "correct": predicted == y,
    }[kind]
    chosen = st.session_state.get(EXPLAIN)
    if chosen in set(table["path"]):
        row = int(np.flatnonzero(table["path"].to_numpy() == chosen)[0])
        explain_panel(entry, chosen, CLASS_NAMES[y[row]], threshold)
    rows = gallery_order(np.flatnonzero(wanted), scores, threshold, GALLERY_ORDERS[order])
    if not len(rows):
        st.info(f"No {kind} at this threshold.")
        return
    pages = max(1, -(-len(rows) // GALLERY_PAGE))
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key="eval_page") if pages > 1 else 1
    shown = rows[(page - 1) * GALLERY_PAGE : page * GALLERY_PAGE]
    green, red = (34, 139, 34), (200, 40, 40)
    for start in range(0, len(shown), 6):
        for col, i in zip(st.columns(6), shown[start : start + 6], strict=False):
            path, right = table["path"][i], predicted[i] == y[i]
            mark = "✓ right" if right else "✗ wrong"
            caption = (f"{mark}: true {CLASS_NAMES[y[i]]} | predicted {CLASS_NAMES[predicted[i]]} "
                       f"({scores[i]:.3f})")  # fmt: skip
            col.image(display.thumbnail(path, 160, green if right else red), caption=caption,
                      width="stretch", alt=f"Chest X-ray {Path(path).name}, {caption}")  # fmt: skip
            key = "cam_" + hashlib.blake2b(path.encode(), digest_size=6).hexdigest()
            col.button(
                "Grad-CAM", key=key, on_click=st.session_state.__setitem__, args=(EXPLAIN, path)
            )
    first = (page - 1) * GALLERY_PAGE + 1
    st.caption(
        f"✓ and a green frame: right; ✗ and a red frame: wrong, at threshold {threshold:.3f}. "
        f"Showing {first}-{first + len(shown) - 1} of {len(rows)}; Grad-CAM opens an image's "
        f"heatmap above. {texts.DISCLAIMER}"
    )


#: The gallery's orders: label -> key of :func:`gallery_order`.
GALLERY_ORDERS = {
    "mixed (seeded shuffle)": "shuffle",
    "most confident first": "confident",
    "least confident first": "uncertain",
    "highest probability first": "probability",
}
GALLERY_PAGE = 24


def gallery_order(rows: np.ndarray, scores: np.ndarray, threshold: float, order: str) -> np.ndarray:
    """``rows`` in the gallery's ``order``: a seeded shuffle (so the first page mixes both
    classes), by confidence (distance of the score from the threshold), or by probability."""
    if order == "shuffle":
        return np.random.default_rng(0).permutation(rows)
    distance = np.abs(scores[rows] - threshold)
    if order == "confident":
        return rows[np.argsort(-distance, kind="stable")]
    if order == "uncertain":
        return rows[np.argsort(distance, kind="stable")]
    return rows[np.argsort(-scores[rows], kind="stable")]


def per_image_csv(table: pd.DataFrame, scores: np.ndarray, threshold: float, model: str) -> bytes:
    """Every scored image as CSV: file, truth, probability, decision, right or wrong, with the
    model and threshold (``cxr_core.evaluation.eval_sets.per_image_rows``; no server folders)."""
    from cxr_core.evaluation.eval_sets import per_image_rows

    frame = pd.DataFrame(per_image_rows(table, scores, threshold))
    frame["threshold"], frame["model"] = round(float(threshold), 6), model
    return frame.to_csv(index=False).encode("utf-8")

"""The Evaluate page's parts: cached sets, scores and operating points, and what draws them.

:func:`evaluation_sets`, :func:`predictions` and :func:`operating_point` are the page's cached
calls (scores on disk in the runs folder, ``cxr_core.evaluation.score_cache``); :func:`scores_ui`,
:func:`threshold_ui`, :func:`metrics_ui`, :func:`curves_ui` and :func:`stress_section` draw the
page's sections in its order; the predictions (CSV and gallery) are :mod:`cxr_app.gallery`'s.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from cxr_app import catalog, charts, environment, loaders, texts
from cxr_core.errors import CXRError
from cxr_core.evaluation import eval_sets
from cxr_core.evaluation.eval_sets import ScoringProgress, stratified_sample
from cxr_core.evaluation.model_card import (
    HEAT_METRICS,
    robustness_lines,
    stress_heat_table,
    stress_rows,
)
from cxr_core.imaging.corruptions import HELD_OUT_FAMILIES
from cxr_core.sidecar import ModelMetadata
from cxr_core.stats.operating_point import OperatingPoint, prevalence_note, small_set_warning

__all__ = [
    "curves_ui",
    "evaluation_sets",
    "metrics_ui",
    "operating_point",
    "predictions",
    "score_cache_dir",
    "scores_ui",
    "stress_section",
    "threshold_ui",
]

# ---------------------------------------------------------------------------------------------
# Cached sets, scores and operating points


@st.cache_data(show_spinner="Preparing the evaluation sets...", ttl=3600, max_entries=8)
def _evaluation_sets(root: str, n_images: int, _entry: catalog.ModelEntry, path: str, mtime: float):
    from cxr_core.evaluation.score_cache import cached_splits

    resolve = cached_splits(_score_cache(str(score_cache_dir())))
    return eval_sets.evaluation_sets(
        loaders.scan_dataset(root), catalog.model_metadata(_entry), resolve
    )


def evaluation_sets(root: str, entry: catalog.ModelEntry) -> list[eval_sets.EvalSet]:
    """The sets a model can be evaluated on (``cxr_core.evaluation.eval_sets``), cached per dataset
    size.

    The rebuilt validation split is also kept on disk beside the cached scores, so a restart
    does not split the training images again.

    Raises:
        CXRError: The dataset or the model cannot be used.
    """
    return _evaluation_sets(root, len(loaders.scan_dataset(root)), entry, entry.path, entry.mtime)


@st.cache_resource(show_spinner=False, max_entries=4)
def _score_cache(folder: str) -> Any:
    from cxr_core.evaluation.score_cache import ScoreCache

    return ScoreCache(Path(folder))


def score_cache_dir() -> Path:
    """Where scores are cached per model and image list: ``.cache/scores`` in the runs folder."""
    return environment.runs_dir() / ".cache" / "scores"


def predictions(entry: catalog.ModelEntry, table: pd.DataFrame, progress: Any = None) -> np.ndarray:
    """PNEUMONIA probabilities of every image of ``table``, in its order.

    Cached on disk by model file version and image list (``cxr_core.evaluation.score_cache``), so a
    restart does not score again; the model loads only on a miss. Scoring takes the model's
    shared worker (``cxr_app.serving``) for itself and lets uploads queued meanwhile run between
    its batches: it queues with Diagnose rather than competing for the cores.

    Args:
        entry: The model.
        table: Rows of a scan table.
        progress: Called with a ``cxr_core.evaluation.eval_sets.ScoringProgress`` while scoring.

    Raises:
        CXRError: The model cannot be loaded or an image cannot be read.
    """
    from cxr_app.serving import served
    from cxr_core.evaluation.score_cache import score_images

    with contextlib.ExitStack() as turn:
        between_batches: list[Any] = []

        def model() -> Any:  # a cache miss only: the model, held from Diagnose's worker
            shared = served(entry)
            between_batches.append(turn.enter_context(shared.worker.turn()))
            return shared.model

        def show(update: Any) -> None:
            for let_uploads_run in between_batches:
                let_uploads_run()  # uploads queued meanwhile take their turn between batches
            if progress is not None:
                progress(update)

        return score_images(
            model,
            entry.path,
            table,
            catalog.model_metadata(entry).image_size,
            cache=_score_cache(str(score_cache_dir())),
            progress=show,
        )


def operating_point(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    stored_threshold: float | None = None,
    prevalence: float | None = None,
) -> Any:
    """``cxr_core.stats.operating_point.operating_point``, cached by its arguments.

    Raises:
        DataError: One class only, or a value out of range.
    """
    from cxr_core.stats.operating_point import operating_point as compute

    return compute(labels, scores, threshold, stored_threshold, prevalence)


# ---------------------------------------------------------------------------------------------
# Sections of the page


def scores_ui(
    root: str, entry: catalog.ModelEntry, size: int
) -> tuple[eval_sets.EvalSet, pd.DataFrame, np.ndarray]:
    """The "Images" picker, then the chosen set (sampled to ``size`` images, 0 = all) scored.

    Returns:
        ``(chosen set, its sampled table, PNEUMONIA probabilities in the table's order)``.

    Raises:
        CXRError: The dataset or the model cannot be used, or an image cannot be read.
    """
    sets = {s.key: s for s in evaluation_sets(root, entry)}
    pick = st.selectbox("Images", list(sets), format_func=lambda k: sets[k].label, key="eval_set")
    chosen = sets[pick]
    table = stratified_sample(chosen.table, int(size))
    return chosen, table, scores_with_progress(entry, table)


def threshold_ui(
    entry: catalog.ModelEntry, y: np.ndarray, set_key: str
) -> tuple[float, float, float]:
    """The decision threshold slider and the prevalence field, both keyed by model (and set).

    Returns:
        ``(threshold, the model's stored threshold, prevalence)``.
    """
    stored = catalog.model_metadata(entry).threshold
    key = hashlib.blake2b(entry.path.encode(), digest_size=6).hexdigest()
    threshold = st.slider(
        "Decision threshold (PNEUMONIA when probability >= threshold)",
        0.0,
        1.0,
        stored,
        0.01,
        format="%.3f",
        key="threshold_" + key,
    )
    st.caption(f"The model's stored threshold is {stored:.3f} (chosen on its validation split).")
    prevalence = st.number_input(
        "Prevalence for PPV and NPV (share of PNEUMONIA among the people tested)",
        0.001,
        0.999,
        float(np.clip(y.mean(), 0.001, 0.999)),
        0.01,
        format="%.3f",
        key=f"prevalence_{key}_{set_key}_{len(y)}",
    )
    return threshold, stored, prevalence


def metrics_ui(point: OperatingPoint, n_scored: int, n_set: int) -> None:
    """The small-set warning, both rows of metric cards and what they were counted on
    (``n_scored`` images, a sample of the set's ``n_set`` when fewer)."""
    warning = small_set_warning(point)
    if warning:
        st.warning(warning, icon=":material/warning:")
    metric_row(
        point,
        [
            ("sensitivity", "Sensitivity", point.sensitivity),
            ("specificity", "Specificity", point.specificity),
            ("ppv", "PPV", point.ppv),
            ("npv", "NPV", point.npv),
            ("accuracy", "Accuracy", point.accuracy),
        ],
    )
    st.caption(prevalence_note(point))
    metric_row(
        point,
        [
            ("roc_auc", "ROC AUC", point.roc_auc),
            ("pr_auc", "Average precision", point.pr_auc),
            ("ece", "Calibration error (ECE)", point.ece),
            ("brier", "Brier score", point.brier),
        ],
    )
    sampled = "" if n_scored == n_set else f", a stratified sample of {n_set:,}"
    st.caption(
        f"{point.n:,} images ({point.n_positive:,} PNEUMONIA, prevalence "
        f"{point.set_prevalence:.3f}){sampled}. {texts.DISCLAIMER}"
    )


def _roc_lines(
    entries: list[catalog.ModelEntry], entry: catalog.ModelEntry, point: OperatingPoint, table: Any
) -> list[tuple[str, Any, Any]]:
    """The model's ROC curve, and a second model's if one is picked in the sidebar."""
    others = {e.path: e for e in entries if e.path != entry.path and e.problem is None}
    compare = st.sidebar.selectbox(
        "Compare ROC with",
        [None, *others],
        format_func=lambda p: "(none)" if p is None else others[p].label,
        key="compare_model",
    )
    roc = [(f"{entry.name} (AUC {point.roc_auc:.3f})", point.curves.fpr, point.curves.tpr)]
    if compare:
        y = table["label_index"].to_numpy()
        try:
            other = operating_point(y, scores_with_progress(others[compare], table), 0.5)
            name = others[compare].name
            roc.append((f"{name} (AUC {other.roc_auc:.3f})", other.curves.fpr, other.curves.tpr))
        except CXRError as error:
            st.sidebar.error(f"The second model cannot be used: {texts.md(error)}")
    return roc


def curves_ui(
    entries: list[catalog.ModelEntry],
    entry: catalog.ModelEntry,
    point: OperatingPoint,
    table: pd.DataFrame,
    log_fpr: bool,
) -> None:
    """Confusion matrix, ROC (with the sidebar's comparison model), PR and calibration
    curves, then the classification report."""
    c = point.curves
    roc = _roc_lines(entries, entry, point, table)
    marks = [(f"{m.name} {m.threshold:.2f}", m.fpr, m.tpr) for m in point.marks]
    left, right = st.columns(2)
    left.plotly_chart(charts.confusion_figure(point.confusion))
    right.plotly_chart(charts.roc_figure(roc, marks, log_fpr=log_fpr))
    pr_marks = [(f"{m.name} {m.threshold:.2f}", m.tpr, m.precision) for m in point.marks]
    left.plotly_chart(
        charts.pr_figure(c.recall, c.precision, point.pr_auc, point.set_prevalence, pr_marks)
    )
    right.plotly_chart(
        charts.calibration_figure(
            c.calibration_predicted, c.calibration_observed, c.calibration_count, point.ece
        )
    )
    st.markdown("**Classification report** at the slider's threshold, counted on this set")
    three = st.column_config.NumberColumn(format="%.3f")
    st.dataframe(point.report, column_config={c: three for c in point.report.columns[:3]})


def scores_with_progress(entry: catalog.ModelEntry, table: pd.DataFrame) -> np.ndarray:
    """Scores of ``table``, with a progress bar (images/s, time left) while they are computed."""
    bar = st.empty()

    def show(p: ScoringProgress) -> None:
        rate, left = p.images_per_second, texts.format_seconds(p.seconds_left)
        speed = f" - {rate:.0f} images/s, about {left} left" if rate else " - starting"
        bar.progress(p.fraction, text=f"Scoring {p.done:,} of {p.total:,} images{speed}")

    scores = predictions(entry, table, progress=show)
    bar.empty()
    return scores


def metric_row(point: OperatingPoint, names: list[tuple[str, str, float]]) -> None:
    """One metric card per ``(key, label, value)``, with its 95% interval underneath."""
    for col, (key, label, value) in zip(st.columns(len(names)), names, strict=True):
        col.metric(label, f"{value:.3f}")
        interval = point.intervals.get(key)
        if interval is not None:
            col.caption(f"95% CI {interval.low:.3f}-{interval.high:.3f} ({interval.method})")


def cell(value: object) -> str:
    """A table cell as text: numbers to 3 decimals, a missing value as a dash (never None)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _heat_colour(value: float, low: float, high: float, higher_is_better: bool) -> str:
    """CSS for one heat-table cell: red for the metric's bad end, green for its good end."""
    if not np.isfinite(value) or high <= low:
        return ""
    share = (value - low) / (high - low)
    share = share if higher_is_better else 1 - share
    red, green = int(230 - 120 * share), int(110 + 110 * share)
    return f"background-color: rgb({red}, {green}, 110); color: black"


def stress_section(metadata: ModelMetadata) -> None:
    """The stress suite stored with the model as a corruption x severity heat table."""
    rows = stress_rows(metadata)
    if not rows:
        st.info(
            "This model was saved without a stress suite. `python -m cxr_core stress --model "
            "MODEL --data DATA` measures one."
        )
        return
    st.caption(
        "Stored with the model: its validation images re-scored under MedMNIST-C's 13 chest "
        "X-ray corruptions, framing and burned-in markers, each at severities 1-5, at the "
        "stored threshold. Clean validation flatters; the worst cells are the better guide to "
        "new patients. Held-out families were never used to choose the threshold."
    )
    labels = dict(HEAT_METRICS)
    metric = st.radio(
        "Metric", list(labels), format_func=labels.get, horizontal=True, key="eval_heat"
    )
    table = stress_heat_table(metadata.stress, metric)
    values = table.to_numpy(float)
    low, high = np.nanmin(values), np.nanmax(values)
    better = metric not in ("balanced_error", "ece", "flip_rate")
    table.index = [
        f"{name.replace('_', ' ')}{' (held out)' if name in HELD_OUT_FAMILIES else ''}"
        for name in table.index
    ]
    table.columns = ["Clean", *(f"Severity {c}" for c in table.columns[1:])]
    styled = table.style.format(cell).map(lambda v: _heat_colour(v, low, high, better))
    st.dataframe(styled, height=36 * (len(table) + 1) + 2)
    for line in robustness_lines(metadata):
        st.text(line)

"""Evaluate: a model's metrics with intervals, curves, stress suite and mistakes on an image set."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

import app_access as access
import app_charts as charts
import app_nav
import app_support as app
from cxr_core.config import CLASS_NAMES
from cxr_core.errors import CXRError
from cxr_core.eval_sets import ScoringProgress, stratified_sample
from cxr_core.model_card import robustness_lines, stress_rows
from cxr_core.operating_point import OperatingPoint, prevalence_note, small_set_warning
from cxr_core.sidecar import ModelMetadata

app_nav.ensure_app_navigation()
EXPLAIN = "eval_explain"  # session key: the gallery image whose Grad-CAM is open


def scores_with_progress(entry: app.ModelEntry, table: pd.DataFrame) -> np.ndarray:
    """Scores of ``table``, with a progress bar (images/s, time left) while they are computed."""
    bar = st.empty()

    def show(p: ScoringProgress) -> None:
        rate, left = p.images_per_second, app.format_seconds(p.seconds_left)
        speed = f" - {rate:.0f} images/s, about {left} left" if rate else " - starting"
        bar.progress(p.fraction, text=f"Scoring {p.done:,} of {p.total:,} images{speed}")

    scores = app.predictions(entry, table, progress=show)
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


def stress_section(metadata: ModelMetadata) -> None:
    """The stress suite stored with the model, with readable headers."""
    rows = stress_rows(metadata)
    if not rows:
        st.info(
            "This model was saved without a stress suite. `python -m cxr_core stress --model "
            "MODEL --data DATA` measures one."
        )
        return
    st.caption(
        "Stored with the model: its validation images re-scored after blur, sharpening, "
        "resampling, JPEG, exposure, contrast, zoom and noise, at the stored threshold. "
        "Clean validation flatters; the worst row is the better guide to new patients."
    )
    table = pd.DataFrame(rows).map(cell).rename(columns=lambda c: c[:1].upper() + c[1:])
    table["Perturbation"] = table["Perturbation"].str.replace("_", " ")
    st.dataframe(table, hide_index=True, height=36 * (len(table) + 1) + 2)
    for line in robustness_lines(metadata):
        st.text(line)


def explain_panel(entry: app.ModelEntry, path: str, label: str, threshold: float) -> None:
    """The Grad-CAM of one gallery image, beside the original."""
    method = st.radio("Explanation", list(app.METHODS), horizontal=True, key="eval_method")
    st.button("Close", key="eval_close", on_click=st.session_state.pop, args=(EXPLAIN, None))
    name = Path(path).name
    try:
        result = app.analyse_upload(entry, Path(path).read_bytes(), name)
    except (CXRError, OSError) as error:
        st.error(f"**{app.md(name)}** could not be explained: {app.md(error)}")
        return
    verdict = CLASS_NAMES[int(result["probability"] >= threshold)]
    st.markdown(
        f"**{app.md(name)}** (true {label}): model output **{verdict}**, probability of "
        f"pneumonia **{result['probability']:.3f}**, threshold **{threshold:.3f}**. "
        f"*{app.DISCLAIMER}*"
    )
    left, right = st.columns(2)
    left.image(result["pixels"], caption="Original", width="stretch")
    right.image(app.heatmap_view(result, method, 0.6), caption=f"{method} overlay", width="stretch")
    if not result["accepted"]:
        st.caption(f"Input check: {app.md(result['refusal'])}")


def gallery(
    entry: app.ModelEntry, table: pd.DataFrame, y: np.ndarray, scores: np.ndarray, threshold: float
) -> None:
    """Thumbnails of one kind of prediction, each with a button that opens its Grad-CAM."""
    kind = st.radio(
        "Show", ["all", "false positives", "false negatives", "correct"], horizontal=True
    )
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
    # A seeded shuffle, so that the first 24 mix both classes (the table is sorted by class).
    rows = np.random.default_rng(0).permutation(np.flatnonzero(wanted))[:24]
    if not len(rows):
        st.info(f"No {kind} at this threshold.")
        return
    green, red = (34, 139, 34), (200, 40, 40)
    for start in range(0, len(rows), 6):
        for col, i in zip(st.columns(6), rows[start : start + 6], strict=False):
            path = table["path"][i]
            col.image(
                app.thumbnail(path, 160, green if predicted[i] == y[i] else red),
                caption=f"true {CLASS_NAMES[y[i]]} | predicted {CLASS_NAMES[predicted[i]]} "
                f"({scores[i]:.2f})",
                width="stretch",
            )
            key = "cam_" + hashlib.blake2b(path.encode(), digest_size=6).hexdigest()
            col.button(
                "Grad-CAM", key=key, on_click=st.session_state.__setitem__, args=(EXPLAIN, path)
            )
    st.caption(
        f"Green frame: right, red frame: wrong, at threshold {threshold:.3f}. Showing {len(rows)} "
        f"of {int(wanted.sum())}; Grad-CAM opens an image's heatmap above. {app.DISCLAIMER}"
    )


st.title("Evaluate")
entries = app.discover_models()
entry = app.model_picker(entries)
root = access.dataset_folder_ui("Dataset folder", "eval_root", app.default_data_root(), st.sidebar)
size = st.sidebar.number_input(
    "Sample at most N images for speed (0 = the whole set)",
    0,
    1_000_000,
    0,
    100,
    help="A sample keeps the set's own share of each class, so PPV, NPV and ECE stay honest.",
)
log_fpr = st.sidebar.toggle("ROC: log false-positive axis", help="Spreads out the top-left corner.")
if entry is None:
    st.info(app.no_model_message())
    st.stop()
if entry.problem:
    st.error(f"The model {app.md(entry.label)} cannot be used: {app.md(entry.problem)}")
    st.stop()
if not root:
    st.info("Type a dataset folder in the sidebar to evaluate on.")
    st.markdown(app.DATASET_GUIDE)
    st.stop()
try:
    sets = {s.key: s for s in app.evaluation_sets(root, entry)}
    pick = st.selectbox("Images", list(sets), format_func=lambda k: sets[k].label, key="eval_set")
    chosen = sets[pick]
    table = stratified_sample(chosen.table, int(size))
    scores = scores_with_progress(entry, table)
except CXRError as error:
    st.error(app.md(error))
    st.stop()
(st.warning if chosen.optimistic else st.info)(app.md(chosen.note))
y = table["label_index"].to_numpy()

stored = app.model_metadata(entry).threshold
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
    key=f"prevalence_{key}_{pick}_{len(table)}",
)
try:
    point = app.operating_point(y, scores, threshold, stored, prevalence)
except CXRError as error:
    st.warning(app.md(error))
    st.stop()

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
sampled = (
    "" if len(table) == len(chosen.table) else f", a stratified sample of {len(chosen.table):,}"
)
st.caption(
    f"{point.n:,} images ({point.n_positive:,} PNEUMONIA, prevalence {point.set_prevalence:.3f})"
    f"{sampled}. {app.DISCLAIMER}"
)

others = {e.path: e for e in entries if e.path != entry.path and e.problem is None}
compare = st.sidebar.selectbox(
    "Compare ROC with",
    [None, *others],
    format_func=lambda p: "(none)" if p is None else others[p].label,
    key="compare_model",
)
c = point.curves
roc = [(f"{entry.name} (AUC {point.roc_auc:.3f})", c.fpr, c.tpr)]
if compare:
    try:
        other = app.operating_point(y, scores_with_progress(others[compare], table), 0.5)
        name = others[compare].name
        roc.append((f"{name} (AUC {other.roc_auc:.3f})", other.curves.fpr, other.curves.tpr))
    except CXRError as error:
        st.sidebar.error(f"The second model cannot be used: {app.md(error)}")
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

st.subheader("Stress suite: the validation split under shift")
stress_section(app.model_metadata(entry))

st.subheader("Predictions")
gallery(entry, table, y, scores, threshold)

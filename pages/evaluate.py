"""Evaluate: a model's curves, calibration, operating point and mistakes on a chosen image set."""

import hashlib

import numpy as np
import pandas as pd
import streamlit as st

import app_access as access
import app_charts as charts
import app_nav
import app_support as app
from cxr_core import evaluate
from cxr_core.config import CLASS_NAMES
from cxr_core.errors import CXRError
from cxr_core.eval_sets import sample_per_class
from cxr_core.model_card import robustness_lines, stress_rows

app_nav.ensure_app_navigation()

st.title("Evaluate")
entries = app.discover_models()
entry = app.model_picker(entries)
root = access.dataset_folder_ui("Dataset folder", "eval_root", app.default_data_root(), st.sidebar)
limit = st.sidebar.number_input("At most N images per class (0 = all)", 0, 100_000, 200, 50)
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
    sample = sample_per_class(chosen.table, int(limit))
    scores = app.predictions(entry, sample)
except CXRError as error:
    st.error(app.md(error))
    st.stop()
(st.warning if chosen.optimistic else st.info)(app.md(chosen.note))
y = sample["label_index"].to_numpy()
if len(np.unique(y)) < 2:
    st.warning("These images hold only one class, so ROC and precision-recall are undefined.")
    st.stop()

stored_meta = app.model_metadata(entry)
stored = stored_meta.threshold
key = "threshold_" + hashlib.blake2b(entry.path.encode(), digest_size=6).hexdigest()
threshold = st.slider(
    "Decision threshold (PNEUMONIA when probability >= threshold)",
    0.0,
    1.0,
    stored,
    0.01,
    format="%.3f",
    key=key,
)
st.caption(f"The model's stored threshold is {stored:.3f} (chosen on its validation split).")
at = evaluate.classification_metrics(y, scores, threshold)
cols = st.columns(5)
for col, (name, value) in zip(
    cols,
    [
        ("Sensitivity", at["sensitivity"]),
        ("Specificity", at["specificity"]),
        ("PPV", at["precision"]),
        ("NPV", at["npv"]),
        ("Accuracy", at["accuracy"]),
    ],
    strict=True,
):
    col.metric(name, f"{value:.3f}")
st.caption(f"{len(y)} images ({int(y.sum())} PNEUMONIA); research demo, not a diagnostic device.")

points = evaluate.metrics_at_thresholds(y, scores, [stored, threshold])
curves = evaluate.curves(y, scores)
ci = evaluate.bootstrap_intervals(y, scores, stored, n_resamples=500, metrics=("roc_auc",))
auc_text = f"AUC {at['roc_auc']:.3f}" + (
    f" (95% CI {ci['roc_auc'][0]:.3f}-{ci['roc_auc'][1]:.3f})" if ci["roc_auc"] else ""
)
marks = [
    (f"stored threshold {stored:.2f}", 1 - points.specificity[0], points.sensitivity[0]),
    (f"slider {threshold:.2f}", 1 - points.specificity[1], points.sensitivity[1]),
]
roc_curves = [
    (f"{entry.label.split(' - ')[0]} ({auc_text})", curves["roc"]["fpr"], curves["roc"]["tpr"])
]

others = {e.path: e for e in entries if e.path != entry.path and e.problem is None}
compare = st.sidebar.selectbox(
    "Compare ROC with",
    [None, *others],
    format_func=lambda p: "(none)" if p is None else others[p].label,
    key="compare_model",
)
if compare:
    try:
        other_scores = app.predictions(others[compare], sample)
        other = evaluate.curves(y, other_scores)["roc"]
        other_auc = evaluate.classification_metrics(y, other_scores, 0.5)["roc_auc"]
        roc_curves.append(
            (
                f"{others[compare].label.split(' - ')[0]} (AUC {other_auc:.3f})",
                other["fpr"],
                other["tpr"],
            )
        )
    except CXRError as error:
        st.sidebar.error(f"The second model cannot be used: {app.md(error)}")

left, right = st.columns(2)
left.plotly_chart(charts.confusion_figure(at["confusion_matrix"]))
right.plotly_chart(charts.roc_figure(roc_curves, marks))
pr_marks = [(n, points.sensitivity[i], points.ppv[i]) for i, (n, _, _) in enumerate(marks)]
left.plotly_chart(
    charts.pr_figure(
        curves["pr"]["recall"], curves["pr"]["precision"], at["pr_auc"], at["prevalence"], pr_marks
    )
)
right.plotly_chart(charts.calibration_figure(curves["calibration"], at["ece"]))
st.markdown("**Classification report** at the slider's threshold")
st.dataframe(evaluate.classification_report_table(y, scores, threshold).round(3))

st.subheader("Stress suite: the validation split under shift")
stress_table = stress_rows(stored_meta)
if stress_table:
    st.caption(
        "Stored with the model: its validation images re-scored after blur, sharpening, "
        "resampling, JPEG, exposure, contrast, zoom and noise, at the stored threshold. "
        "Clean validation flatters; the worst row is the better guide to new patients."
    )
    st.dataframe(pd.DataFrame(stress_table).round(3), hide_index=True)
    for line in robustness_lines(stored_meta):
        st.text(line)
else:
    st.info(
        "This model was saved without a stress suite. `python -m cxr_core stress --model "
        "MODEL --data DATA` measures one."
    )

st.subheader("Predictions")
kind = st.radio("Show", ["all", "false positives", "false negatives", "correct"], horizontal=True)
predicted = (scores >= threshold).astype(int)
wanted = {
    "all": np.ones_like(y, bool),
    "false positives": (predicted == 1) & (y == 0),
    "false negatives": (predicted == 0) & (y == 1),
    "correct": predicted == y,
}[kind]
# A seeded shuffle, so that the first 24 mix both classes (the table is sorted by class).
rows = np.random.default_rng(0).permutation(np.flatnonzero(wanted))[:24]
if not len(rows):
    st.info(f"No {kind} at this threshold.")
else:
    green, red = (34, 139, 34), (200, 40, 40)
    st.image(
        [
            app.thumbnail(sample["path"][i], 160, green if predicted[i] == y[i] else red)
            for i in rows
        ],
        caption=[
            f"true {CLASS_NAMES[y[i]]} | predicted {CLASS_NAMES[predicted[i]]} ({scores[i]:.2f})"
            for i in rows
        ],
        width=170,
    )
    st.caption(f"Green frame: right, red frame: wrong. Showing {len(rows)} of {int(wanted.sum())}.")

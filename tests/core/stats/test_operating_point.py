"""cxr_core.stats.operating_point on generated scores, and the stratified sample of eval_sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxr_core.errors import DataError
from cxr_core.evaluation.eval_sets import stratified_sample
from cxr_core.stats.operating_point import (
    operating_point,
    predictive_values,
    prevalence_note,
    small_set_warning,
    wilson_interval,
)


def generated(n: int, prevalence: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels with the given share of positives and overlapping scores."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) < round(n * prevalence)).astype(int)
    scores = np.clip(rng.normal(0.35 + 0.3 * y, 0.15), 0.0, 1.0)
    return y, scores


def test_ppv_and_npv_at_a_set_prevalence_follow_bayes_rule_from_the_counts():
    y, scores = generated(400, 0.75)
    point = operating_point(y, scores, 0.5, prevalence=0.1)
    pred = scores >= 0.5
    tp, fn = np.sum(pred & (y == 1)), np.sum(~pred & (y == 1))
    tn, fp = np.sum(~pred & (y == 0)), np.sum(pred & (y == 0))
    se, sp = tp / (tp + fn), tn / (tn + fp)
    # Hand-written Bayes: of 1000 people at 10%, 100 ill (se*100 found), 900 well.
    found, false_alarms = se * 100, (1 - sp) * 900
    cleared, missed = sp * 900, (1 - se) * 100
    assert point.ppv == pytest.approx(found / (found + false_alarms))
    assert point.npv == pytest.approx(cleared / (cleared + missed))
    assert (point.sensitivity, point.specificity) == (pytest.approx(se), pytest.approx(sp))
    assert point.prevalence == 0.1 and point.set_prevalence == 0.75
    assert "prevalence of 0.100" in prevalence_note(point)
    assert "own share of PNEUMONIA is 0.750" in prevalence_note(point)


def test_at_the_sets_own_prevalence_ppv_and_npv_are_the_counted_ones():
    y, scores = generated(300, 0.3)
    point = operating_point(y, scores, 0.45)
    pred = scores >= 0.45
    assert point.ppv == pytest.approx(np.mean(y[pred]))
    assert point.npv == pytest.approx(np.mean(1 - y[~pred]))
    assert "this set's own share of PNEUMONIA" in prevalence_note(point)


def test_predictive_values_at_the_extremes_and_out_of_range():
    assert predictive_values(0.9, 0.8, 1.0) == (1.0, 0.0)
    assert predictive_values(0.9, 0.8, 0.0) == (0.0, 1.0)
    with pytest.raises(DataError, match="prevalence"):
        predictive_values(0.9, 0.8, 1.5)
    with pytest.raises(DataError, match="prevalence"):
        operating_point(*generated(50, 0.5), 0.5, prevalence=0.0)


def test_calibration_bin_counts_sum_to_the_number_of_images():
    y, scores = generated(537, 0.6, seed=3)
    curves = operating_point(y, scores, 0.5).curves
    assert sum(curves.calibration_count) == 537
    assert len(curves.calibration_count) == len(curves.calibration_predicted)
    assert all(count > 0 for count in curves.calibration_count)


def test_marks_sit_on_the_roc_curve_at_their_thresholds():
    y, scores = generated(200, 0.5)
    point = operating_point(y, scores, 0.6, stored_threshold=0.4)
    stored, slider = point.marks
    assert (stored.name, slider.name) == ("stored threshold", "this threshold")
    assert stored.tpr == pytest.approx(np.mean(scores[y == 1] >= 0.4))
    assert stored.fpr == pytest.approx(np.mean(scores[y == 0] >= 0.4))
    assert slider.tpr == pytest.approx(point.sensitivity) and slider.tpr <= stored.tpr


def test_wilson_interval_stays_wide_on_a_perfect_small_sample():
    interval = wilson_interval(8, 8)
    assert interval.high == 1.0 and interval.low == pytest.approx(0.676, abs=1e-3)
    assert wilson_interval(0, 0) is None
    wide, narrow = wilson_interval(40, 50), wilson_interval(800, 1000)
    assert wide.low < 0.8 < wide.high and narrow.width < wide.width / 3


def test_under_100_images_the_warning_names_the_count_and_interval_widths():
    y = np.array([0] * 8 + [1] * 8)
    scores = np.r_[np.linspace(0.0, 0.3, 8), np.linspace(0.7, 1.0, 8)]  # perfectly separated
    point = operating_point(y, scores, 0.5)
    warning = small_set_warning(point)
    assert point.small and point.roc_auc == 1.0
    assert warning.startswith("Only 16 images (8 PNEUMONIA): these figures are mostly noise.")
    assert "sensitivity 0.68-1.00 (width 0.32)" in warning
    assert "ROC AUC 1.00-1.00 (width 0.00)" in warning and "cannot show" in warning
    assert small_set_warning(operating_point(*generated(100, 0.5), 0.5)) is None


def test_the_report_has_readable_headers_and_no_empty_cells():
    point = operating_point(*generated(120, 0.4), 0.5)
    assert list(point.report.columns) == [
        "Precision (PPV)",
        "Recall (sensitivity)",
        "F1 score",
        "Images",
    ]
    assert list(point.report.index) == ["NORMAL", "PNEUMONIA", "Macro average", "Weighted average"]
    assert not point.report.isna().any().any()


def test_one_class_is_refused_with_a_readable_message():
    with pytest.raises(DataError, match="only one class"):
        operating_point(np.ones(10, int), np.linspace(0, 1, 10), 0.5)


def test_stratified_sample_keeps_the_class_ratio_in_table_order():
    table = pd.DataFrame(
        {
            "path": [f"f{i:04d}" for i in range(1000)],
            "label": ["NORMAL"] * 260 + ["PNEUMONIA"] * 740,
        }
    )
    sample = stratified_sample(table, 100, seed=1)
    assert sample["label"].value_counts().to_dict() == {"PNEUMONIA": 74, "NORMAL": 26}
    assert list(sample["path"]) == sorted(sample["path"])
    assert stratified_sample(table, 100, seed=1).equals(sample)
    assert stratified_sample(table, 0).equals(table)
    assert stratified_sample(table, 5000).equals(table)
    odd = stratified_sample(table, 7, seed=2)["label"].value_counts().to_dict()
    assert odd == {"PNEUMONIA": 5, "NORMAL": 2}  # 5.18 and 1.82: the larger remainder rounds up

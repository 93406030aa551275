"""Tests for cxr_core.stats.curves: ROC, PR and calibration curves, and the threshold grid."""

from __future__ import annotations

import json

import pytest

from cxr_core.errors import DataError
from cxr_core.stats.curves import curves, metrics_at_thresholds
from cxr_core.stats.metrics import classification_metrics
from tests.core.stats.cases import S, Y

# Any warning (zero division, undefined metric) is a failure.
pytestmark = pytest.mark.filterwarnings("error")


def test_curves_are_json_ready_and_consistent():
    c = curves(Y, S)
    json.dumps(c, allow_nan=False)
    roc, pr = c["roc"], c["pr"]
    assert roc["thresholds"][0] == 1.0  # sklearn's inf
    assert roc["fpr"][0] == roc["tpr"][0] == 0.0 and roc["fpr"][-1] == roc["tpr"][-1] == 1.0
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"])
    assert len(pr["precision"]) == len(pr["recall"]) == len(pr["thresholds"]) + 1
    assert all(0.0 <= t <= 1.0 for t in roc["thresholds"] + pr["thresholds"])


def test_calibration_curve_lists_non_empty_bins_with_counts():
    c = curves([0, 1, 1, 1, 0], [0.2, 0.4, 0.6, 0.8, 0.9], n_bins=2)["calibration"]
    assert c["count"] == [2, 3]
    assert c["fraction_positive"] == pytest.approx([1 / 2, 2 / 3])
    assert c["mean_predicted"] == pytest.approx([0.3, 2.3 / 3])


def test_curves_of_one_class_input_have_no_roc_or_pr():
    c = curves([1, 1, 1], [0.2, 0.7, 0.9])
    assert c["roc"] is None and c["pr"] is None
    assert sum(c["calibration"]["count"]) == 3


def test_metrics_at_thresholds_match_classification_metrics():
    grid = [0.0, 0.35, 0.5, 0.55, 0.9, 1.0]
    table = metrics_at_thresholds(Y, S, grid)
    assert list(table.columns) == [
        "threshold",
        "sensitivity",
        "specificity",
        "ppv",
        "npv",
        "accuracy",
    ]
    for row in table.itertuples():
        m = classification_metrics(Y, S, row.threshold)
        assert row.sensitivity == pytest.approx(m["sensitivity"])
        assert row.specificity == pytest.approx(m["specificity"])
        assert row.ppv == pytest.approx(m["precision"])
        assert row.npv == pytest.approx(m["npv"])
        assert row.accuracy == pytest.approx(m["accuracy"])


def test_metrics_at_thresholds_rejects_threshold_outside_unit_interval():
    with pytest.raises(DataError):
        metrics_at_thresholds(Y, S, [0.2, 1.2])

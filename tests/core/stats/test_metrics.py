"""Tests for cxr_core.stats.metrics, checked against hand-computed examples and scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxr_core.errors import ConfigError, DataError
from cxr_core.stats.metrics import (
    choose_threshold,
    classification_metrics,
    classification_report_table,
    evaluation_report,
    expected_calibration_error,
)
from tests.core.stats.cases import S, Y, random_cases

# Any warning (zero division, undefined metric) is a failure.
pytestmark = pytest.mark.filterwarnings("error")


def test_classification_metrics_match_hand_computed_confusion_matrix():
    m = classification_metrics(Y, S, 0.5)
    assert m["confusion_matrix"] == {"tn": 4, "fp": 2, "fn": 1, "tp": 3}
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["sensitivity"] == m["recall"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["npv"] == pytest.approx(4 / 5)
    assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert m["prevalence"] == pytest.approx(0.4)
    assert (m["n"], m["threshold"]) == (10, 0.5)


def test_classification_metrics_ranking_and_probability_scores_match_hand_values():
    m = classification_metrics(Y, S, 0.5)
    # Pairs (PNEUMONIA, NORMAL) ranked correctly: 3 + 4 + 6 + 6 of 24.
    assert m["roc_auc"] == pytest.approx(19 / 24)
    # Positives at ranks 1, 2, 5, 7: precision 1, 1, 3/5, 4/7.
    assert m["pr_auc"] == pytest.approx((1 + 1 + 3 / 5 + 4 / 7) / 4)
    assert m["brier"] == pytest.approx(1.925 / 10)
    # One case per bin: mean |y - s| = (2.3 + 1.3) / 10.
    assert m["ece"] == pytest.approx(0.36)


def test_classification_metrics_returns_exact_keys_as_plain_python_values():
    m = classification_metrics(np.array(Y), np.array(S, dtype=np.float32), np.float32(0.5))
    assert set(m) == {
        "accuracy",
        "precision",
        "recall",
        "sensitivity",
        "specificity",
        "npv",
        "f1",
        "roc_auc",
        "pr_auc",
        "brier",
        "ece",
        "threshold",
        "n",
        "prevalence",
        "confusion_matrix",
    }
    for key, value in m.items():
        if key == "confusion_matrix":
            assert all(type(v) is int for v in value.values())
        else:
            assert type(value) in (float, int), key


def test_classification_metrics_accepts_column_vector_scores():
    column = np.array(S).reshape(-1, 1)
    assert classification_metrics(Y, column, 0.5) == classification_metrics(Y, S, 0.5)


def test_threshold_equal_to_score_predicts_positive():
    m = classification_metrics(Y, S, 0.55)
    assert m["confusion_matrix"]["tp"] == 3


@pytest.mark.parametrize(
    ("scores", "auc"), [([0.1, 0.2, 0.8, 0.9], 1.0), ([0.9, 0.8, 0.2, 0.1], 0.0)]
)
def test_roc_auc_of_perfect_and_inverted_scores(scores, auc):
    assert classification_metrics([0, 0, 1, 1], scores, 0.5)["roc_auc"] == auc


def test_perfect_scores_have_pr_auc_one():
    assert classification_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 0.5)["pr_auc"] == 1.0


def test_one_class_input_gives_none_aucs_and_zero_for_empty_ratios():
    m = classification_metrics([0, 0, 0], [0.1, 0.6, 0.2], 0.5)
    assert m["roc_auc"] is None and m["pr_auc"] is None
    assert m["confusion_matrix"] == {"tn": 2, "fp": 1, "fn": 0, "tp": 0}
    assert m["sensitivity"] == 0.0 and m["precision"] == 0.0 and m["f1"] == 0.0
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["npv"] == 1.0
    json.dumps(m, allow_nan=False)


@pytest.mark.parametrize(
    ("y_true", "scores", "threshold"),
    [
        ([], [], 0.5),
        ([0, 1, 1], [0.2, 0.7], 0.5),
        ([0, 2], [0.2, 0.7], 0.5),
        ([0, -1], [0.2, 0.7], 0.5),
        (["NORMAL", "PNEUMONIA"], [0.2, 0.7], 0.5),
        ([0, 1], [0.2, 1.5], 0.5),
        ([0, 1], [-0.1, 0.7], 0.5),
        ([0, 1], [0.2, float("nan")], 0.5),
        ([0, 1], [0.2, 0.7], 1.5),
        ([0, 1], [0.2, 0.7], -0.1),
        ([0, 1], [0.2, 0.7], float("nan")),
        ([0, 1], [0.2, 0.7], "0.5"),
    ],
    ids=[
        "empty",
        "length-mismatch",
        "label-2",
        "label-minus-1",
        "label-strings",
        "score-above-1",
        "score-below-0",
        "score-nan",
        "threshold-above-1",
        "threshold-below-0",
        "threshold-nan",
        "threshold-string",
    ],
)
def test_invalid_input_raises_data_error(y_true, scores, threshold):
    with pytest.raises(DataError):
        classification_metrics(y_true, scores, threshold)


def test_ece_of_tiny_example_matches_hand_value():
    # Bin [0, 0.5]: scores 0.2, 0.4, confidence 0.3, accuracy 1/2 -> 2/5 * 0.2
    # Bin (0.5, 1]: scores 0.6, 0.8, 0.9, confidence 23/30, accuracy 2/3 -> 3/5 * 0.1
    ece = expected_calibration_error([0, 1, 1, 1, 0], [0.2, 0.4, 0.6, 0.8, 0.9], n_bins=2)
    assert ece == pytest.approx(0.08 + 0.06)


def test_ece_puts_a_score_on_a_bin_edge_in_the_lower_bin():
    # 0.5 in [0, 0.5]: |1 - 0.5| and |0 - 1.0| apart -> (0.5 + 1.0) / 2.
    assert expected_calibration_error([1, 0], [0.5, 1.0], n_bins=2) == pytest.approx(0.75)


def test_ece_of_calibrated_bins_is_zero():
    # Four cases at 0.5, half of them PNEUMONIA; one certain case of each class.
    y_true, scores = [0, 1, 0, 1, 1, 0], [0.5, 0.5, 0.5, 0.5, 1.0, 0.0]
    assert expected_calibration_error(y_true, scores) == 0.0


def test_ece_rejects_non_positive_bins():
    with pytest.raises(ConfigError):
        expected_calibration_error(Y, S, n_bins=0)


def test_youden_threshold_separates_separable_classes():
    negatives, positives = [0.1, 0.2, 0.3, 0.35], [0.6, 0.7, 0.9]
    t = choose_threshold([0] * 4 + [1] * 3, negatives + positives, rule="youden")
    assert max(negatives) < t <= min(positives)
    assert classification_metrics([0] * 4 + [1] * 3, negatives + positives, t)["accuracy"] == 1.0


def test_youden_tie_goes_to_threshold_closest_to_half():
    # J = 0.5 at thresholds 0.85 and 0.35 (see the hand example); 0.35 is closer to 0.5.
    assert choose_threshold(Y, S, rule="youden") == 0.35


@pytest.mark.parametrize(("target", "expected"), [(0.75, 0.55), (0.95, 0.35), (0.5, 0.85)])
def test_sensitivity_rule_gives_highest_threshold_reaching_target(target, expected):
    t = choose_threshold(Y, S, rule="sensitivity", target_sensitivity=target)
    assert t == expected
    assert classification_metrics(Y, S, t)["sensitivity"] >= target
    higher = min(x for x in S if x > t)
    assert classification_metrics(Y, S, higher)["sensitivity"] < target


def test_sensitivity_rule_reaches_target_on_random_scores():
    y, s = random_cases()
    t = choose_threshold(y, s, rule="sensitivity", target_sensitivity=0.9)
    assert 0.0 <= t <= 1.0
    assert classification_metrics(y, s, t)["sensitivity"] >= 0.9


def test_choose_threshold_rejects_unknown_rule():
    with pytest.raises(ConfigError):
        choose_threshold(Y, S, rule="f1")


def test_choose_threshold_rejects_bad_target():
    with pytest.raises(ConfigError):
        choose_threshold(Y, S, rule="sensitivity", target_sensitivity=0.0)


def test_choose_threshold_needs_both_classes():
    with pytest.raises(DataError):
        choose_threshold([1, 1], [0.3, 0.8])


def test_classification_report_table_uses_class_names_and_hand_values():
    table = classification_report_table(Y, S, 0.5)
    assert list(table.index) == ["NORMAL", "PNEUMONIA", "accuracy", "macro avg", "weighted avg"]
    assert table.loc["NORMAL", "precision"] == pytest.approx(4 / 5)
    assert table.loc["NORMAL", "recall"] == pytest.approx(4 / 6)
    assert table.loc["PNEUMONIA", "precision"] == pytest.approx(3 / 5)
    assert table.loc["PNEUMONIA", "recall"] == pytest.approx(3 / 4)
    assert table.loc["accuracy", "f1-score"] == pytest.approx(0.7)
    assert table["support"].tolist() == [6, 4, 10, 10, 10]


def test_evaluation_report_survives_a_json_round_trip():
    y, s = random_cases()
    report = evaluation_report(y, s, 0.5, n_resamples=100, seed=1)
    assert {"ci", "curves", "roc_auc", "confusion_matrix"} <= set(report)
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_evaluation_report_of_one_class_input_is_json_ready():
    report = evaluation_report([0, 0, 0], [0.1, 0.6, 0.2], 0.5, n_resamples=20)
    assert report["ci"]["roc_auc"] is None
    assert json.loads(json.dumps(report, allow_nan=False)) == report

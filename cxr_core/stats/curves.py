"""Curves of the classifier over every threshold: ROC, precision-recall, calibration, and
operating-point metrics over a grid of thresholds.

Labels and scores are checked as in :mod:`cxr_core.stats.inputs`; results are JSON-ready lists
(:func:`curves`) or a DataFrame (:func:`metrics_at_thresholds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from cxr_core.errors import DataError
from cxr_core.stats.inputs import (
    as_vector,
    bin_ids,
    both_classes,
    check_inputs,
    check_n_bins,
    ratio,
)

__all__ = ["curves", "metrics_at_thresholds"]


def _json_thresholds(thresholds: np.ndarray) -> list[float]:
    return np.clip(np.where(np.isfinite(thresholds), thresholds, 1.0), 0.0, 1.0).tolist()


def curves(y_true: Sequence[int], scores: Sequence[float], n_bins: int = 10) -> dict[str, Any]:
    """ROC, precision-recall and calibration curves as JSON-ready lists.

    Args:
        y_true: Labels, shape (n,), values 0 or 1.
        scores: Probabilities of PNEUMONIA, shape (n,), values in [0, 1].
        n_bins: Equal-width bins of the calibration curve (see
            :func:`expected_calibration_error`).

    Returns:
        ``{"roc": {"fpr", "tpr", "thresholds"}, "pr": {"precision", "recall", "thresholds"},
        "calibration": {"mean_predicted", "fraction_positive", "count"}}`` of lists of floats
        (``count`` holds ints), from sklearn's ``roc_curve``, ``precision_recall_curve`` and
        ``calibration_curve``. Infinite thresholds become 1.0. The calibration lists cover the
        non-empty bins only. ``roc`` and ``pr`` are ``None`` when only one class is present.

    Raises:
        DataError: Invalid labels or scores.
        ConfigError: ``n_bins`` is not a positive integer.
    """
    y, s = check_inputs(y_true, scores)
    n_bins = check_n_bins(n_bins)
    fraction_positive, mean_predicted = calibration_curve(y, s, n_bins=n_bins, strategy="uniform")
    counts = np.bincount(bin_ids(s, n_bins), minlength=n_bins)
    result: dict[str, Any] = {
        "roc": None,
        "pr": None,
        "calibration": {
            "mean_predicted": mean_predicted.tolist(),
            "fraction_positive": fraction_positive.tolist(),
            "count": counts[counts > 0].tolist(),
        },
    }
    if both_classes(y):
        fpr, tpr, roc_thresholds = roc_curve(y, s)
        precision, recall, pr_thresholds = precision_recall_curve(y, s)
        result["roc"] = {
            "fpr": fpr.tolist(),
            "tpr": tpr.tolist(),
            "thresholds": _json_thresholds(roc_thresholds),
        }
        result["pr"] = {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "thresholds": _json_thresholds(pr_thresholds),
        }
    return result


def metrics_at_thresholds(
    y_true: Sequence[int], scores: Sequence[float], thresholds: Sequence[float]
) -> pd.DataFrame:
    """Operating-point metrics over a grid of thresholds, computed for all thresholds at once.

    Args:
        y_true: Labels, shape (n,), values 0 or 1.
        scores: Probabilities of PNEUMONIA, shape (n,), values in [0, 1].
        thresholds: Grid of thresholds, shape (k,), values in [0, 1].

    Returns:
        A DataFrame of k rows with float columns ``threshold``, ``sensitivity``,
        ``specificity``, ``ppv``, ``npv`` and ``accuracy``; a ratio whose denominator is 0 is
        0.0, as in :func:`classification_metrics`.

    Raises:
        DataError: Invalid labels or scores, or a threshold outside [0, 1] or NaN.
    """
    y, s = check_inputs(y_true, scores)
    grid = as_vector(thresholds, "thresholds").astype(np.float64)
    if not (np.isfinite(grid).all() and ((grid >= 0) & (grid <= 1)).all()):
        raise DataError("thresholds must be numbers between 0 and 1, without NaN.")
    positives, negatives = np.sort(s[y == 1]), np.sort(s[y == 0])
    # Cases with score >= t are those not counted by searchsorted(..., side="left").
    tp = positives.size - np.searchsorted(positives, grid, side="left")
    fp = negatives.size - np.searchsorted(negatives, grid, side="left")
    fn, tn = positives.size - tp, negatives.size - fp
    return pd.DataFrame(
        {
            "threshold": grid,
            "sensitivity": ratio(tp, tp + fn),
            "specificity": ratio(tn, tn + fp),
            "ppv": ratio(tp, tp + fp),
            "npv": ratio(tn, tn + fn),
            "accuracy": (tp + tn) / y.size,
        }
    )

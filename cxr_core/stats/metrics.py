"""Metrics for the pneumonia classifier: point estimates, the threshold rules, the reports.

Conventions (:mod:`cxr_core.stats.inputs`): labels are 0 = NORMAL and 1 = PNEUMONIA, scores the
model's probability of PNEUMONIA in [0, 1], and a case is predicted PNEUMONIA when
``score >= threshold``. scikit-learn computes the metrics; this module validates the inputs,
handles one-class input (AUCs become ``None``), and returns plain Python values that
``json.dumps`` accepts. Bad inputs raise :class:`DataError`, bad settings :class:`ConfigError`.
Bootstrap intervals live in :mod:`cxr_core.stats.bootstrap`, ROC, PR and calibration curves in
:mod:`cxr_core.stats.curves`; :func:`evaluation_report` gathers all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from cxr_core.config import CLASS_NAMES
from cxr_core.errors import ConfigError, DataError
from cxr_core.stats.bootstrap import bootstrap_intervals, weighted_ece
from cxr_core.stats.curves import curves
from cxr_core.stats.inputs import both_classes, check_inputs, check_n_bins, check_threshold, ratio

__all__ = [
    "THRESHOLD_RULES",
    "choose_threshold",
    "classification_metrics",
    "classification_report_table",
    "evaluation_report",
    "expected_calibration_error",
]

#: Rules that :func:`choose_threshold` knows.
THRESHOLD_RULES = ("youden", "sensitivity")


# ---------------------------------------------------------------------------------------------
# Point estimates and thresholds


def classification_metrics(
    y_true: Sequence[int], scores: Sequence[float], threshold: float
) -> dict[str, Any]:
    """Compute every headline metric of a binary classifier at one decision threshold.

    Args:
        y_true: Labels, shape (n,) or (n, 1), values 0 (NORMAL) or 1 (PNEUMONIA).
        scores: Probabilities of PNEUMONIA, shape (n,) or (n, 1), values in [0, 1].
        threshold: A case is predicted PNEUMONIA when ``score >= threshold``; in [0, 1].

    Returns:
        A JSON-ready dict of plain floats and ints with keys ``accuracy``, ``precision`` (PPV),
        ``recall`` and ``sensitivity`` (the same value), ``specificity``, ``npv``, ``f1``,
        ``roc_auc``, ``pr_auc`` (average precision), ``brier``, ``ece`` (10 bins), ``threshold``,
        ``n``, ``prevalence`` (share of PNEUMONIA) and ``confusion_matrix``
        (``{"tn", "fp", "fn", "tp"}``). A ratio whose denominator is 0 is 0.0; ``roc_auc`` and
        ``pr_auc`` are ``None`` when only one class is present.

    Raises:
        DataError: Empty input, lengths that differ, labels other than 0/1, scores outside
            [0, 1] or NaN, or a threshold outside [0, 1].
    """
    y, s = check_inputs(y_true, scores)
    t = check_threshold(threshold)
    pred = (s >= t).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, pred, labels=[0, 1]).ravel())
    both = both_classes(y)
    recall = float(recall_score(y, pred, zero_division=0.0))
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0.0)),
        "recall": recall,
        "sensitivity": recall,
        "specificity": float(ratio(tn, tn + fp)),
        "npv": float(ratio(tn, tn + fn)),
        "f1": float(f1_score(y, pred, zero_division=0.0)),
        "roc_auc": float(roc_auc_score(y, s)) if both else None,
        "pr_auc": float(average_precision_score(y, s)) if both else None,
        "brier": float(brier_score_loss(y, s, pos_label=1)),
        "ece": expected_calibration_error(y, s),
        "threshold": t,
        "n": int(y.size),
        "prevalence": float(y.mean()),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


def expected_calibration_error(
    y_true: Sequence[int], scores: Sequence[float], n_bins: int = 10
) -> float:
    """Expected calibration error of PNEUMONIA probabilities (the reliability-diagram ECE).

    The interval [0, 1] is cut into ``n_bins`` equal-width bins, ``[0, 1/M], (1/M, 2/M], ...,
    ((M-1)/M, 1]`` (the binning of ``sklearn.calibration.calibration_curve``). In bin ``b`` with
    ``n_b`` cases, confidence is the mean predicted probability of PNEUMONIA and accuracy is the
    fraction of cases that are PNEUMONIA; then
    ``ECE = sum_b (n_b / n) * |accuracy_b - confidence_b|``. Empty bins contribute nothing.

    Args:
        y_true: Labels, shape (n,), values 0 or 1.
        scores: Probabilities of PNEUMONIA, shape (n,), values in [0, 1].
        n_bins: Number of equal-width bins, at least 1.

    Returns:
        The ECE, a float in [0, 1]; 0 means perfectly calibrated on these bins.

    Raises:
        DataError: Invalid labels or scores (see :func:`classification_metrics`).
        ConfigError: ``n_bins`` is not a positive integer.
    """
    y, s = check_inputs(y_true, scores)
    return float(weighted_ece(np.ones((1, y.size)), y, s, check_n_bins(n_bins))[0])


def choose_threshold(
    y_true: Sequence[int],
    scores: Sequence[float],
    rule: str = "youden",
    target_sensitivity: float = 0.95,
) -> float:
    """Choose a decision threshold from labelled validation scores.

    Candidates are the distinct scores (sklearn's ``roc_curve`` without dropping points); a
    candidate ``t`` means "PNEUMONIA when ``score >= t``".

    - ``"youden"``: the candidate maximising Youden's J = sensitivity + specificity - 1. Ties
      (equal J within 1e-12) go to the candidate closest to 0.5, then to the higher one.
    - ``"sensitivity"``: the highest candidate whose sensitivity is at least
      ``target_sensitivity`` (so specificity is as high as that sensitivity allows).

    Args:
        y_true: Labels, shape (n,), values 0 or 1; both classes must be present.
        scores: Probabilities of PNEUMONIA, shape (n,), values in [0, 1].
        rule: One of :data:`THRESHOLD_RULES`.
        target_sensitivity: Sensitivity the ``"sensitivity"`` rule must reach, in (0, 1].

    Returns:
        The threshold, a float in [0, 1] equal to one of the scores.

    Raises:
        ConfigError: Unknown rule or ``target_sensitivity`` outside (0, 1].
        DataError: Invalid labels or scores, or only one class present.
    """
    if rule not in THRESHOLD_RULES:
        raise ConfigError(f"rule must be 'youden' or 'sensitivity'. Received: rule={rule!r}")
    target = target_sensitivity
    if not (isinstance(target, int | float) and not isinstance(target, bool) and 0 < target <= 1):
        raise ConfigError(
            "target_sensitivity must be a number in (0, 1]. "
            f"Received: target_sensitivity={target!r}"
        )
    y, s = check_inputs(y_true, scores)
    if not both_classes(y):
        raise DataError("Choosing a threshold needs both NORMAL and PNEUMONIA cases.")
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    # Drop sklearn's leading "nothing is positive" point (threshold inf): it is no score.
    fpr, tpr, thresholds = fpr[1:], tpr[1:], np.clip(thresholds[1:], 0.0, 1.0)
    if rule == "sensitivity":
        return float(thresholds[np.argmax(tpr >= target)])  # thresholds fall, tpr rises
    youden = tpr - fpr
    best = thresholds[np.isclose(youden, youden.max(), rtol=0.0, atol=1e-12)]
    distance = np.abs(best - 0.5)
    return float(best[distance <= distance.min() + 1e-12].max())


# ---------------------------------------------------------------------------------------------
# Reports


def evaluation_report(
    y_true: Sequence[int],
    scores: Sequence[float],
    threshold: float,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything known about a classifier on one labelled set, as one JSON-ready dict.

    Args:
        y_true: Labels, shape (n,), values 0 or 1.
        scores: Probabilities of PNEUMONIA, shape (n,), values in [0, 1].
        threshold: Decision threshold in [0, 1].
        n_resamples: Bootstrap resamples for the intervals.
        seed: Bootstrap seed.

    Returns:
        :func:`classification_metrics` plus ``"ci"`` (the default :func:`bootstrap_intervals`,
        each a ``[low, high]`` list or ``None``) and ``"curves"`` (:func:`curves`).

    Raises:
        DataError: Invalid labels, scores or threshold.
        ConfigError: Invalid bootstrap settings.
    """
    report = classification_metrics(y_true, scores, threshold)
    intervals = bootstrap_intervals(y_true, scores, threshold, n_resamples=n_resamples, seed=seed)
    # Lists rather than tuples, so the dict equals its own JSON round trip.
    report["ci"] = {name: None if ci is None else list(ci) for name, ci in intervals.items()}
    report["curves"] = curves(y_true, scores)
    return report


def classification_report_table(
    y_true: Sequence[int], scores: Sequence[float], threshold: float
) -> pd.DataFrame:
    """sklearn's classification report at one threshold, as a table.

    Args:
        y_true: Labels, shape (n,), values 0 or 1.
        scores: Probabilities of PNEUMONIA, shape (n,), values in [0, 1].
        threshold: Decision threshold in [0, 1].

    Returns:
        A DataFrame indexed ``NORMAL``, ``PNEUMONIA``, ``accuracy``, ``macro avg``,
        ``weighted avg`` with float columns ``precision``, ``recall``, ``f1-score`` and an int
        column ``support``. As in sklearn's text report, the ``accuracy`` row holds the accuracy
        under ``f1-score``, NaN under precision and recall, and n under ``support``.

    Raises:
        DataError: Invalid labels, scores or threshold.
    """
    y, s = check_inputs(y_true, scores)
    pred = (s >= check_threshold(threshold)).astype(np.int64)
    report = classification_report(
        y, pred, labels=[0, 1], target_names=list(CLASS_NAMES), output_dict=True, zero_division=0.0
    )
    report["accuracy"] = {
        "precision": np.nan,
        "recall": np.nan,
        "f1-score": report["accuracy"],
        "support": y.size,
    }
    rows = [*CLASS_NAMES, "accuracy", "macro avg", "weighted avg"]
    table = pd.DataFrame.from_dict({row: report[row] for row in rows}, orient="index")
    return table.astype({"support": np.int64})

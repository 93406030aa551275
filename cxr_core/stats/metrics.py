"""Metrics for the pneumonia classifier: point estimates, bootstrap intervals, curves, thresholds.

Conventions used throughout: labels are 0 = NORMAL and 1 = PNEUMONIA (``config.CLASS_NAMES``),
scores are the model's probability of PNEUMONIA in [0, 1], and a case is predicted PNEUMONIA
when ``score >= threshold``. scikit-learn computes the metrics; this module validates the
inputs, handles one-class input (AUCs become ``None``), and returns plain Python values that
``json.dumps`` accepts. Bad inputs raise :class:`DataError`, bad settings :class:`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from cxr_core.config import CLASS_NAMES
from cxr_core.errors import ConfigError, DataError

__all__ = [
    "BOOTSTRAP_METRICS",
    "THRESHOLD_RULES",
    "bootstrap_intervals",
    "choose_threshold",
    "classification_metrics",
    "classification_report_table",
    "curves",
    "evaluation_report",
    "expected_calibration_error",
    "metrics_at_thresholds",
]

#: Metrics that :func:`bootstrap_intervals` can resample.
BOOTSTRAP_METRICS = (
    "accuracy", "precision", "recall", "sensitivity", "specificity", "npv", "f1",
    "roc_auc", "pr_auc", "brier", "ece",
)  # fmt: skip
#: Rules that :func:`choose_threshold` knows.
THRESHOLD_RULES = ("youden", "sensitivity")

_DEFAULT_CI_METRICS = ("accuracy", "sensitivity", "specificity", "roc_auc", "pr_auc", "ece")
# Resamples are processed in blocks of about this many (resample, case) cells to bound memory.
_BLOCK_CELLS = 1_000_000


# ---------------------------------------------------------------------------------------------
# Validation


def _as_vector(values: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a flat sequence of numbers.") from None
    if array.ndim == 2 and array.shape[1] == 1:  # model.predict returns (n, 1)
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(f"{name} must be a flat sequence of numbers. Received shape {array.shape}.")
    if array.dtype.kind not in "biuf":
        raise DataError(f"{name} must contain numbers. Received dtype {array.dtype}.")
    return array


def _check_inputs(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = _as_vector(y_true, "y_true")
    s = _as_vector(scores, "scores")
    if y.size == 0:
        raise DataError("Metrics need at least one case, but y_true is empty.")
    if y.size != s.size:
        raise DataError(
            f"y_true and scores must be the same length. Received {y.size} and {s.size}."
        )
    if not np.isin(y, (0, 1)).all():
        raise DataError("y_true must contain only 0 (NORMAL) and 1 (PNEUMONIA).")
    s = s.astype(np.float64)
    if not (np.isfinite(s).all() and s.min() >= 0.0 and s.max() <= 1.0):
        raise DataError("scores must be probabilities between 0 and 1, without NaN.")
    return y.astype(np.int64), s


def _check_threshold(threshold: Any) -> float:
    ok = isinstance(threshold, int | float | np.number) and not isinstance(threshold, bool)
    if not (ok and 0.0 <= float(threshold) <= 1.0):  # NaN fails the comparison
        raise DataError(f"threshold must be a number in [0, 1]. Received: threshold={threshold!r}")
    return float(threshold)


def _check_n_bins(n_bins: Any) -> int:
    if not (isinstance(n_bins, int | np.integer) and not isinstance(n_bins, bool) and n_bins >= 1):
        raise ConfigError(f"n_bins must be a positive integer. Received: n_bins={n_bins!r}")
    return int(n_bins)


def _check_bootstrap_settings(n_resamples: Any, seed: Any, level: Any, metrics: Any) -> None:
    def is_int(value: Any) -> bool:
        return isinstance(value, int | np.integer) and not isinstance(value, bool)

    if not (is_int(n_resamples) and n_resamples >= 1):
        raise ConfigError(
            f"n_resamples must be a positive integer. Received: n_resamples={n_resamples!r}"
        )
    if not (is_int(seed) and seed >= 0):
        raise ConfigError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    if not (isinstance(level, int | float) and not isinstance(level, bool) and 0 < level < 1):
        raise ConfigError(f"level must be a number in (0, 1). Received: level={level!r}")
    names_ok = isinstance(metrics, Sequence) and not isinstance(metrics, str)
    if not (names_ok and all(name in BOOTSTRAP_METRICS for name in metrics)):
        known = ", ".join(BOOTSTRAP_METRICS)
        raise ConfigError(f"metrics must be names from {known}. Received: metrics={metrics!r}")


def _both_classes(y: np.ndarray) -> bool:
    return bool(y.min() == 0 and y.max() == 1)


def _ratio(numerator: Any, denominator: Any, empty: float = 0.0) -> np.ndarray:
    """numerator / denominator elementwise, ``empty`` where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, empty, dtype=np.float64)
    return np.divide(numerator, denominator, out=out, where=np.asarray(denominator) > 0)


def _json_thresholds(thresholds: np.ndarray) -> list[float]:
    return np.clip(np.where(np.isfinite(thresholds), thresholds, 1.0), 0.0, 1.0).tolist()


def _bin_ids(scores: np.ndarray, n_bins: int) -> np.ndarray:
    # The same binning as sklearn's calibration_curve(strategy="uniform"): [0, 1/M], (1/M, 2/M], ...
    return np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], scores)


# ---------------------------------------------------------------------------------------------
# Point estimates


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
    y, s = _check_inputs(y_true, scores)
    t = _check_threshold(threshold)
    pred = (s >= t).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, pred, labels=[0, 1]).ravel())
    both = _both_classes(y)
    recall = float(recall_score(y, pred, zero_division=0.0))
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0.0)),
        "recall": recall,
        "sensitivity": recall,
        "specificity": float(_ratio(tn, tn + fp)),
        "npv": float(_ratio(tn, tn + fn)),
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
    y, s = _check_inputs(y_true, scores)
    return float(_weighted_ece(np.ones((1, y.size)), y, s, _check_n_bins(n_bins))[0])


# ---------------------------------------------------------------------------------------------
# Bootstrap


def _weighted_ece(weights: np.ndarray, y: np.ndarray, s: np.ndarray, n_bins: int) -> np.ndarray:
    """ECE for each row of case weights (B, n); n_b * |acc_b - conf_b| = |sum_b (y - s)|."""
    per_bin = np.zeros((y.size, n_bins))
    per_bin[np.arange(y.size), _bin_ids(s, n_bins)] = y - s
    return np.abs(weights @ per_bin).sum(axis=1) / weights.sum(axis=1)


def _weighted_ranking(weights: np.ndarray, y: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
    """ROC AUC and average precision for each row of case weights (B, n); NaN if one class.

    The same sums as sklearn's roc_auc_score / average_precision_score with sample_weight:
    weighted cumulative true and false positives at each distinct score, highest score first.
    """
    order = np.argsort(-s, kind="mergesort")
    ends = np.r_[np.flatnonzero(np.diff(s[order])), s.size - 1]  # last case of each tied score
    w = weights[:, order]
    tps = np.cumsum(w * y[order], axis=1)[:, ends]
    fps = np.cumsum(w, axis=1)[:, ends] - tps
    positives, negatives = tps[:, -1:], fps[:, -1:]
    one_class = (positives[:, 0] == 0) | (negatives[:, 0] == 0)
    start = np.zeros((w.shape[0], 1))
    tpr = np.hstack([start, _ratio(tps, positives)])
    fpr = np.hstack([start, _ratio(fps, negatives)])
    roc_auc = np.trapezoid(tpr, fpr, axis=1)
    pr_auc = (np.diff(tpr, axis=1) * _ratio(tps, tps + fps)).sum(axis=1)
    return {
        "roc_auc": np.where(one_class, np.nan, roc_auc),
        "pr_auc": np.where(one_class, np.nan, pr_auc),
    }


def _weighted_metrics(
    weights: np.ndarray, y: np.ndarray, s: np.ndarray, threshold: float, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Each named metric for each row of case weights (B, n); NaN where a metric is undefined."""
    pos, pred = y == 1, s >= threshold
    tp, fp = weights @ (pred & pos), weights @ (pred & ~pos)
    fn, tn = weights @ (~pred & pos), weights @ (~pred & ~pos)
    n = weights.sum(axis=1)
    sensitivity = _ratio(tp, tp + fn, np.nan)
    values = {
        "accuracy": (tp + tn) / n,
        "precision": _ratio(tp, tp + fp, np.nan),
        "recall": sensitivity,
        "sensitivity": sensitivity,
        "specificity": _ratio(tn, tn + fp, np.nan),
        "npv": _ratio(tn, tn + fn, np.nan),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, np.nan),
        "brier": weights @ (s - y) ** 2 / n,
    }
    if "ece" in names:
        values["ece"] = _weighted_ece(weights, y, s, 10)
    if "roc_auc" in names or "pr_auc" in names:
        values.update(_weighted_ranking(weights, y, s))
    return {name: values[name] for name in names}


def _resample_counts(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """How often each of n cases is drawn in each of ``size`` resamples with replacement."""
    draws = rng.integers(0, n, size=(size, n))
    flat = (draws + n * np.arange(size)[:, None]).ravel()
    return np.bincount(flat, minlength=size * n).reshape(size, n).astype(np.float64)


def bootstrap_intervals(
    y_true: Sequence[int],
    scores: Sequence[float],
    threshold: float,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    metrics: Sequence[str] = _DEFAULT_CI_METRICS,
) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap confidence intervals for metrics at one threshold.

    Cases are resampled with replacement ``n_resamples`` times (``numpy.random.default_rng(seed)``,
    so a seed always gives the same intervals); the metrics are computed for every resample at
    once from per-case draw counts. A resample in which a metric is undefined is skipped for that
    metric: one class only for ``roc_auc``/``pr_auc``, no positives for ``sensitivity``, and so
    on. ``ece`` uses 10 bins.

    Args:
        y_true: Labels, shape (n,), values 0 or 1.
        scores: Probabilities of PNEUMONIA, shape (n,), values in [0, 1].
        threshold: Decision threshold in [0, 1].
        n_resamples: Number of bootstrap resamples, at least 1.
        seed: Seed of the random generator, a non-negative integer.
        level: Coverage of each interval, in (0, 1).
        metrics: Names from :data:`BOOTSTRAP_METRICS`.

    Returns:
        ``{metric: (low, high)}`` with plain floats, or ``None`` for a metric that no resample
        defines (e.g. AUCs on one-class input).

    Raises:
        DataError: Invalid labels, scores or threshold.
        ConfigError: Invalid ``n_resamples``, ``seed``, ``level`` or metric names.
    """
    y, s = _check_inputs(y_true, scores)
    t = _check_threshold(threshold)
    _check_bootstrap_settings(n_resamples, seed, level, metrics)
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // y.size)
    samples: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    for start in range(0, n_resamples, block):
        weights = _resample_counts(rng, y.size, min(block, n_resamples - start))
        for name, values in _weighted_metrics(weights, y, s, t, metrics).items():
            samples[name].append(values)
    tail = 50.0 * (1.0 - level)
    intervals: dict[str, tuple[float, float] | None] = {}
    for name, parts in samples.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        low, high = np.percentile(values, [tail, 100.0 - tail]) if values.size else (None, None)
        intervals[name] = None if low is None else (float(low), float(high))
    return intervals


# ---------------------------------------------------------------------------------------------
# Curves and thresholds


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
    y, s = _check_inputs(y_true, scores)
    n_bins = _check_n_bins(n_bins)
    fraction_positive, mean_predicted = calibration_curve(y, s, n_bins=n_bins, strategy="uniform")
    counts = np.bincount(_bin_ids(s, n_bins), minlength=n_bins)
    result: dict[str, Any] = {
        "roc": None,
        "pr": None,
        "calibration": {
            "mean_predicted": mean_predicted.tolist(),
            "fraction_positive": fraction_positive.tolist(),
            "count": counts[counts > 0].tolist(),
        },
    }
    if _both_classes(y):
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
    y, s = _check_inputs(y_true, scores)
    if not _both_classes(y):
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
    y, s = _check_inputs(y_true, scores)
    grid = _as_vector(thresholds, "thresholds").astype(np.float64)
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
            "sensitivity": _ratio(tp, tp + fn),
            "specificity": _ratio(tn, tn + fp),
            "ppv": _ratio(tp, tp + fp),
            "npv": _ratio(tn, tn + fn),
            "accuracy": (tp + tn) / y.size,
        }
    )


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
    y, s = _check_inputs(y_true, scores)
    pred = (s >= _check_threshold(threshold)).astype(np.int64)
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

"""Percentile bootstrap confidence intervals for the classifier's metrics at one threshold.

:func:`bootstrap_intervals` resamples cases with replacement and computes every metric for all
resamples at once, from per-case draw counts used as weights (the ``_weighted_*`` functions give
each metric for each row of weights). Labels, scores and threshold are checked as in
:mod:`cxr_core.stats.inputs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cxr_core.errors import ConfigError
from cxr_core.stats.inputs import bin_ids, check_inputs, check_threshold, ratio

__all__ = ["BOOTSTRAP_METRICS", "bootstrap_intervals", "weighted_ece"]

#: Metrics that :func:`bootstrap_intervals` can resample.
BOOTSTRAP_METRICS = (
    "accuracy", "precision", "recall", "sensitivity", "specificity", "npv", "f1",
    "roc_auc", "pr_auc", "brier", "ece",
)  # fmt: skip

_DEFAULT_CI_METRICS = ("accuracy", "sensitivity", "specificity", "roc_auc", "pr_auc", "ece")
# Resamples are processed in blocks of about this many (resample, case) cells to bound memory.
_BLOCK_CELLS = 1_000_000


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


def weighted_ece(weights: np.ndarray, y: np.ndarray, s: np.ndarray, n_bins: int) -> np.ndarray:
    """ECE for each row of case weights (B, n); n_b * |acc_b - conf_b| = |sum_b (y - s)|.

    Unit weights ``np.ones((1, n))`` give the plain ECE
    (:func:`cxr_core.stats.metrics.expected_calibration_error`).
    """
    per_bin = np.zeros((y.size, n_bins))
    per_bin[np.arange(y.size), bin_ids(s, n_bins)] = y - s
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
    tpr = np.hstack([start, ratio(tps, positives)])
    fpr = np.hstack([start, ratio(fps, negatives)])
    roc_auc = np.trapezoid(tpr, fpr, axis=1)
    pr_auc = (np.diff(tpr, axis=1) * ratio(tps, tps + fps)).sum(axis=1)
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
    sensitivity = ratio(tp, tp + fn, np.nan)
    values = {
        "accuracy": (tp + tn) / n,
        "precision": ratio(tp, tp + fp, np.nan),
        "recall": sensitivity,
        "sensitivity": sensitivity,
        "specificity": ratio(tn, tn + fp, np.nan),
        "npv": ratio(tn, tn + fn, np.nan),
        "f1": ratio(2 * tp, 2 * tp + fp + fn, np.nan),
        "brier": weights @ (s - y) ** 2 / n,
    }
    if "ece" in names:
        values["ece"] = weighted_ece(weights, y, s, 10)
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
    y, s = check_inputs(y_true, scores)
    t = check_threshold(threshold)
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

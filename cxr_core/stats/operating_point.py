"""One operating point of the classifier on one labelled set: metrics, intervals, curves, marks.

:func:`operating_point` is the Evaluate page's one call. It reuses :mod:`cxr_core.stats.metrics`
(scikit-learn underneath) and adds what honest reading needs:

- **PPV and NPV at a stated prevalence.** A set's PPV and NPV hold only at that set's share of
  PNEUMONIA. At another prevalence ``p`` they follow from sensitivity and specificity by Bayes'
  rule (:func:`predictive_values`); at the set's own prevalence this equals the counted PPV/NPV.
- **Intervals whose width is visible.** Proportions (sensitivity, specificity, accuracy) get
  Wilson score intervals, which stay wide on few images where a percentile bootstrap collapses
  to a point (8 of 8 correct gives 1.000-1.000 by bootstrap, 0.676-1.000 by Wilson). PPV and
  NPV at ``p`` get the conservative interval of Bayes' rule at the ends of the sensitivity and
  specificity intervals. ROC AUC and ECE get the bootstrap of
  :func:`cxr_core.stats.bootstrap.bootstrap_intervals`.
- Below :data:`SMALL_SET` images, ``small`` is set: the figures are noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxr_core.errors import DataError
from cxr_core.stats import metrics as evaluate
from cxr_core.stats.bootstrap import bootstrap_intervals
from cxr_core.stats.curves import curves, metrics_at_thresholds

__all__ = [
    "SMALL_SET",
    "Curves",
    "Interval",
    "Mark",
    "OperatingPoint",
    "operating_point",
    "predictive_values",
    "prevalence_note",
    "small_set_warning",
    "wilson_interval",
]

#: Below this many images the page warns that the figures are noise.
SMALL_SET = 100
_Z95 = 1.959963984540054  # standard normal quantile of 0.975
_REPORT_COLUMNS = {
    "precision": "Precision (PPV)",
    "recall": "Recall (sensitivity)",
    "f1-score": "F1 score",
    "support": "Images",
}
_REPORT_ROWS = {"macro avg": "Macro average", "weighted avg": "Weighted average"}


@dataclass(frozen=True)
class Interval:
    """A 95% interval ``[low, high]`` and how it was made (``"Wilson"``, ``"bootstrap"``...)."""

    low: float
    high: float
    method: str

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low


@dataclass(frozen=True)
class Mark:
    """A threshold's point on the curves: ROC ``(fpr, tpr)`` and PR ``(tpr, precision)``."""

    name: str
    threshold: float
    fpr: float
    tpr: float
    precision: float


@dataclass(frozen=True)
class Curves:
    """ROC, precision-recall and calibration curves (sklearn), as tuples of floats.

    ``calibration_count`` holds the images in each non-empty bin; they sum to ``n``.
    """

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    recall: tuple[float, ...]
    precision: tuple[float, ...]
    calibration_predicted: tuple[float, ...]
    calibration_observed: tuple[float, ...]
    calibration_count: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class OperatingPoint:
    """Everything the Evaluate page shows about one threshold on one labelled set.

    Attributes:
        threshold: PNEUMONIA when ``score >= threshold``.
        n: Images; ``n_positive`` of them PNEUMONIA.
        set_prevalence: ``n_positive / n``.
        prevalence: The prevalence ``ppv`` and ``npv`` are at.
        sensitivity, specificity, accuracy: Counted on the set.
        ppv, npv: By Bayes' rule at ``prevalence``.
        roc_auc, pr_auc: Ranking quality (threshold-free); pr_auc at ``set_prevalence``.
        ece, brier: Calibration (10 equal-width bins) and Brier score.
        confusion: ``{"tn", "fp", "fn", "tp"}`` counts.
        intervals: 95% :class:`Interval` per metric name; None where undefined.
        curves: The set's :class:`Curves`.
        marks: The stored threshold's and this threshold's :class:`Mark`.
        report: Per-class precision, recall, F1 and image counts with readable headers.
        small: Fewer than :data:`SMALL_SET` images.
    """

    threshold: float
    n: int
    n_positive: int
    set_prevalence: float
    prevalence: float
    sensitivity: float
    specificity: float
    accuracy: float
    ppv: float
    npv: float
    roc_auc: float
    pr_auc: float
    ece: float
    brier: float
    confusion: dict[str, int]
    intervals: dict[str, Interval | None]
    curves: Curves
    marks: tuple[Mark, ...]
    report: pd.DataFrame
    small: bool


def wilson_interval(successes: int, trials: int) -> Interval | None:
    """The 95% Wilson score interval of a proportion; None when ``trials`` is 0."""
    if trials <= 0:
        return None
    p, z2 = successes / trials, _Z95**2
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = _Z95 * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials**2)) / (1 + z2 / trials)
    return Interval(max(0.0, centre - half), min(1.0, centre + half), "Wilson")


def predictive_values(
    sensitivity: float, specificity: float, prevalence: float
) -> tuple[float, float]:
    """PPV and NPV at a prevalence, by Bayes' rule.

    ``PPV = se p / (se p + (1 - sp)(1 - p))`` and ``NPV = sp (1 - p) / (sp (1 - p) + (1 - se) p)``;
    a ratio whose denominator is 0 is 0.0, as in
    :func:`cxr_core.stats.metrics.classification_metrics`.

    Args:
        sensitivity: In [0, 1].
        specificity: In [0, 1].
        prevalence: Share of PNEUMONIA among the people tested, in [0, 1].

    Returns:
        ``(ppv, npv)``, floats in [0, 1].

    Raises:
        DataError: ``prevalence`` is outside [0, 1] or NaN.
    """
    if not 0.0 <= float(prevalence) <= 1.0:
        raise DataError(f"prevalence must be a number in [0, 1]. Received: prevalence={prevalence}")
    p, se, sp = float(prevalence), float(sensitivity), float(specificity)
    true_pos, false_pos = se * p, (1 - sp) * (1 - p)
    true_neg, false_neg = sp * (1 - p), (1 - se) * p
    ppv = true_pos / (true_pos + false_pos) if true_pos + false_pos > 0 else 0.0
    npv = true_neg / (true_neg + false_neg) if true_neg + false_neg > 0 else 0.0
    return ppv, npv


def _check_prevalence(prevalence: object) -> float:
    ok = isinstance(prevalence, int | float | np.floating) and not isinstance(prevalence, bool)
    if not (ok and 0.0 < float(prevalence) < 1.0):  # NaN fails the comparison
        raise DataError(
            f"prevalence must be a number between 0 and 1. Received: prevalence={prevalence!r}"
        )
    return float(prevalence)


def _intervals(
    y: np.ndarray, scores: np.ndarray, at: dict, prevalence: float, n_resamples: int, seed: int
) -> dict[str, Interval | None]:
    m = at["confusion_matrix"]
    found = {
        "sensitivity": wilson_interval(m["tp"], m["tp"] + m["fn"]),
        "specificity": wilson_interval(m["tn"], m["tn"] + m["fp"]),
        "accuracy": wilson_interval(m["tp"] + m["tn"], len(y)),
    }
    sens, spec = found["sensitivity"], found["specificity"]
    low = predictive_values(sens.low, spec.low, prevalence)
    high = predictive_values(sens.high, spec.high, prevalence)
    for index, name in enumerate(("ppv", "npv")):
        found[name] = Interval(low[index], high[index], "Bayes at the Wilson ends")
    boot = bootstrap_intervals(
        y, scores, at["threshold"], n_resamples=n_resamples, seed=seed, metrics=("roc_auc", "ece")
    )
    for name, pair in boot.items():
        found[name] = None if pair is None else Interval(pair[0], pair[1], "bootstrap")
    return found


def _marks(
    y: np.ndarray, scores: np.ndarray, named: Sequence[tuple[str, float]]
) -> tuple[Mark, ...]:
    table = metrics_at_thresholds(y, scores, [t for _, t in named])
    return tuple(
        Mark(name, float(t), 1 - float(row.specificity), float(row.sensitivity), float(row.ppv))
        for (name, t), row in zip(named, table.itertuples(), strict=True)
    )


def _report(y: np.ndarray, scores: np.ndarray, threshold: float) -> pd.DataFrame:
    table = evaluate.classification_report_table(y, scores, threshold)
    # The accuracy row is mostly empty cells; accuracy is shown beside the other metrics.
    table = table.drop(index="accuracy").rename(index=_REPORT_ROWS, columns=_REPORT_COLUMNS)
    table.index.name = "Class"
    return table.round(3)


def _curves(y: np.ndarray, scores: np.ndarray) -> Curves:
    found = curves(y, scores)
    roc, pr, calibration = found["roc"], found["pr"], found["calibration"]
    return Curves(
        tuple(roc["fpr"]),
        tuple(roc["tpr"]),
        tuple(pr["recall"]),
        tuple(pr["precision"]),
        tuple(calibration["mean_predicted"]),
        tuple(calibration["fraction_positive"]),
        tuple(int(c) for c in calibration["count"]),
    )


def operating_point(
    y_true: Sequence[int],
    scores: Sequence[float],
    threshold: float,
    stored_threshold: float | None = None,
    prevalence: float | None = None,
    n_resamples: int = 500,
    seed: int = 0,
) -> OperatingPoint:
    """Metrics, intervals, curves and marks of one threshold on one labelled set.

    Args:
        y_true: Labels, shape (n,), 0 (NORMAL) or 1 (PNEUMONIA); both classes present.
        scores: Probabilities of PNEUMONIA, shape (n,), in [0, 1].
        threshold: The threshold to report, in [0, 1].
        stored_threshold: The model's own threshold, marked on the curves too (if given).
        prevalence: The prevalence for PPV and NPV, in (0, 1); None uses the set's own.
        n_resamples: Bootstrap resamples for the ROC AUC and ECE intervals.
        seed: Bootstrap seed.

    Returns:
        The :class:`OperatingPoint`.

    Raises:
        DataError: Invalid labels, scores, threshold or prevalence, or only one class.
    """
    at = evaluate.classification_metrics(y_true, scores, threshold)
    if at["roc_auc"] is None:
        raise DataError(
            "These images hold only one class, so ROC and precision-recall are undefined."
        )
    y, s = np.asarray(y_true).reshape(-1), np.asarray(scores, dtype=np.float64).reshape(-1)
    p = at["prevalence"] if prevalence is None else _check_prevalence(prevalence)
    ppv, npv = predictive_values(at["sensitivity"], at["specificity"], p)
    named = [("this threshold", at["threshold"])]
    if stored_threshold is not None:
        named.insert(0, ("stored threshold", float(stored_threshold)))
    return OperatingPoint(
        threshold=at["threshold"],
        n=at["n"],
        n_positive=int(y.sum()),
        set_prevalence=at["prevalence"],
        prevalence=float(p),
        sensitivity=at["sensitivity"],
        specificity=at["specificity"],
        accuracy=at["accuracy"],
        ppv=ppv,
        npv=npv,
        roc_auc=at["roc_auc"],
        pr_auc=at["pr_auc"],
        ece=at["ece"],
        brier=at["brier"],
        confusion=at["confusion_matrix"],
        intervals=_intervals(y, s, at, float(p), n_resamples, seed),
        curves=_curves(y, s),
        marks=_marks(y, s, named),
        report=_report(y, s, at["threshold"]),
        small=at["n"] < SMALL_SET,
    )


def _interval_text(point: OperatingPoint, name: str, label: str) -> str:
    interval = point.intervals.get(name)
    if interval is None:
        return f"{label} undefined"
    return f"{label} {interval.low:.2f}-{interval.high:.2f} (width {interval.width:.2f})"


def small_set_warning(point: OperatingPoint) -> str | None:
    """A plain warning when the set is too small to trust (under :data:`SMALL_SET` images).

    Returns:
        One paragraph naming the image count and every interval's width, or None when the set
        is large enough.
    """
    if not point.small:
        return None
    widths = ", ".join(
        _interval_text(point, name, label)
        for name, label in (
            ("sensitivity", "sensitivity"),
            ("specificity", "specificity"),
            ("ppv", "PPV"),
            ("npv", "NPV"),
            ("roc_auc", "ROC AUC"),
        )
    )
    text = (
        f"Only {point.n} images ({point.n_positive} PNEUMONIA): these figures are mostly noise. "
        f"95% intervals: {widths}."
    )
    auc = point.intervals.get("roc_auc")
    if auc is not None and auc.width < 0.02:
        text += (
            f" The ROC AUC interval is a bootstrap of these {point.n} images only: it cannot "
            "show how much the AUC would move on other patients."
        )
    return text + " Evaluate on a larger split, such as the validation split, for a reading."


def prevalence_note(point: OperatingPoint) -> str:
    """One sentence saying at which prevalence PPV and NPV are, and how they were computed."""
    own = abs(point.prevalence - point.set_prevalence) < 5e-4
    which = (
        "this set's own share of PNEUMONIA"
        if own
        else f"set above; this set's own share of PNEUMONIA is {point.set_prevalence:.3f}"
    )
    return (
        f"PPV and NPV at a prevalence of {point.prevalence:.3f} ({which}), from sensitivity and "
        "specificity by Bayes' rule: at another prevalence they differ."
    )

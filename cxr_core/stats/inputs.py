"""Labels and scores as every metric takes them: the checks, and the helpers they share.

Conventions used throughout ``cxr_core.stats``' metric modules (:mod:`~cxr_core.stats.metrics`,
:mod:`~cxr_core.stats.bootstrap`, :mod:`~cxr_core.stats.curves`): labels are 0 = NORMAL and
1 = PNEUMONIA (``config.CLASS_NAMES``), scores are the model's probability of PNEUMONIA in
[0, 1], and a case is predicted PNEUMONIA when ``score >= threshold``. Bad inputs raise
:class:`DataError`, bad settings :class:`ConfigError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxr_core.errors import ConfigError, DataError

__all__ = [
    "as_vector",
    "bin_ids",
    "both_classes",
    "check_inputs",
    "check_n_bins",
    "check_threshold",
    "ratio",
]


def as_vector(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D array of numbers; an ``(n, 1)`` column becomes ``(n,)``.

    Raises:
        DataError: Not a flat sequence of numbers.
    """
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


def check_inputs(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels as int64 0/1 and scores as float64 in [0, 1], both ``(n,)`` with n >= 1.

    Raises:
        DataError: Empty input, lengths that differ, labels other than 0/1, or scores outside
            [0, 1] or NaN.
    """
    y = as_vector(y_true, "y_true")
    s = as_vector(scores, "scores")
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


def check_threshold(threshold: Any) -> float:
    """The threshold as a float; raises :class:`DataError` unless it is a number in [0, 1]."""
    ok = isinstance(threshold, int | float | np.number) and not isinstance(threshold, bool)
    if not (ok and 0.0 <= float(threshold) <= 1.0):  # NaN fails the comparison
        raise DataError(f"threshold must be a number in [0, 1]. Received: threshold={threshold!r}")
    return float(threshold)


def check_n_bins(n_bins: Any) -> int:
    """The bin count as an int; raises :class:`ConfigError` unless it is a positive integer."""
    if not (isinstance(n_bins, int | np.integer) and not isinstance(n_bins, bool) and n_bins >= 1):
        raise ConfigError(f"n_bins must be a positive integer. Received: n_bins={n_bins!r}")
    return int(n_bins)


def both_classes(y: np.ndarray) -> bool:
    """Whether checked labels hold both NORMAL (0) and PNEUMONIA (1)."""
    return bool(y.min() == 0 and y.max() == 1)


def ratio(numerator: Any, denominator: Any, empty: float = 0.0) -> np.ndarray:
    """numerator / denominator elementwise, ``empty`` where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, empty, dtype=np.float64)
    return np.divide(numerator, denominator, out=out, where=np.asarray(denominator) > 0)


def bin_ids(scores: np.ndarray, n_bins: int) -> np.ndarray:
    """The calibration bin (0 to ``n_bins - 1``) of each score, as in the ECE."""
    # The same binning as sklearn's calibration_curve(strategy="uniform"): [0, 1/M], (1/M, 2/M], ...
    return np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], scores)

"""Class-conditional split-conformal prediction sets: an honest "uncertain".

A threshold turns every probability into a verdict, even at 0.5. Split conformal prediction
(Vovk et al. 2005; Angelopoulos & Bates 2021, "A gentle introduction to conformal prediction")
instead gives a *set* of plausible classes that holds the true class with a stated probability
(the coverage, default 95%) on images exchangeable with the calibration images. The
class-conditional ("Mondrian") version fits one quantile per class, so the coverage holds for
healthy and for ill children separately, not only on average.

For class ``k`` the nonconformity score of an image is ``1 - p_k`` (``p_1`` the probability of
PNEUMONIA, ``p_0 = 1 - p_1``). Its quantile ``q_k`` is the ``ceil((n_k + 1)(1 - alpha))``-th
smallest score of the ``n_k`` calibration images of class ``k`` (infinite when ``n_k`` is too
small for the coverage: the class is then always in the set). In probabilities:

- NORMAL is in the set when ``p_1 <= normal_max = q_0``;
- PNEUMONIA is in the set when ``p_1 >= pneumonia_min = 1 - q_1``.

The model's own verdict at its threshold is always added to the set, so a definite decision
never contradicts the ``label`` a user also sees (adding a class only raises coverage). The
decision is UNCERTAIN exactly when both classes are in the set.

The quantiles hold for images like the calibration images: the bundled model's come from its
validation split (the training hospital); a site-fitted model's from the site's images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cxr_core.config import CLASS_NAMES
from cxr_core.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_COVERAGE",
    "UNCERTAIN",
    "ConformalSets",
    "conformal_quantile",
    "decide",
    "decisions",
    "fit_conformal",
    "risk_coverage",
    "set_metrics",
]

#: Coverage the sets aim at unless told otherwise.
DEFAULT_COVERAGE = 0.95
#: The decision when both classes are plausible.
UNCERTAIN = "UNCERTAIN"


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """The split-conformal quantile of nonconformity ``scores`` at ``coverage``.

    Args:
        scores: ``(n,)`` nonconformity scores of one class's calibration images.
        coverage: Target coverage in (0, 1).

    Returns:
        The ``ceil((n + 1) coverage)``-th smallest score; ``inf`` when that rank exceeds ``n``.
    """
    values = np.sort(np.asarray(scores, np.float64).reshape(-1))
    rank = math.ceil((len(values) + 1) * coverage)
    return float(values[rank - 1]) if 1 <= rank <= len(values) else math.inf


@dataclass(frozen=True)
class ConformalSets:
    """Fitted class-conditional conformal bounds on the PNEUMONIA probability.

    Attributes:
        coverage: Target coverage per class, in (0, 1).
        normal_max: NORMAL is plausible when the probability is at most this (may be > 1:
            always plausible).
        pneumonia_min: PNEUMONIA is plausible when the probability is at least this (may be
            < 0: always plausible).
        n_normal: Calibration images of NORMAL.
        n_pneumonia: Calibration images of PNEUMONIA.
        fitted_on: What the calibration images were, in a few words.
    """

    coverage: float
    normal_max: float
    pneumonia_min: float
    n_normal: int
    n_pneumonia: int
    fitted_on: str = ""

    def __post_init__(self) -> None:
        if not 0.0 < self.coverage < 1.0:
            raise ConfigError(f"coverage must be in (0, 1). Received: coverage={self.coverage!r}")

    def sets(self, probabilities: np.ndarray, threshold: float) -> np.ndarray:
        """``(n, 2)`` bool: whether NORMAL / PNEUMONIA is in each image's set.

        Args:
            probabilities: ``(n,)`` PNEUMONIA probabilities in [0, 1].
            threshold: The model's decision threshold; its verdict is always in the set.
        """
        p = np.asarray(probabilities, np.float64).reshape(-1)
        verdict = p >= threshold
        normal = (p <= self.normal_max) | ~verdict
        pneumonia = (p >= self.pneumonia_min) | verdict
        return np.stack([normal, pneumonia], axis=1)

    def prediction_set(self, probability: float, threshold: float) -> tuple[str, ...]:
        """The class names in one image's set, NORMAL first."""
        row = self.sets(np.array([probability]), threshold)[0]
        return tuple(name for name, keep in zip(CLASS_NAMES, row, strict=True) if keep)

    def decision(self, probability: float, threshold: float) -> str:
        """``NORMAL``, ``PNEUMONIA`` or ``UNCERTAIN`` (both in the set) for one image."""
        return str(decisions(self.sets(np.array([probability]), threshold))[0])

    def to_dict(self) -> dict[str, float | int | str | None]:
        """The sidecar's ``conformal`` entry (infinite bounds as null)."""
        return {
            "method": "class-conditional split conformal",
            "coverage": self.coverage,
            "normal_max": _finite_or_none(self.normal_max),
            "pneumonia_min": _finite_or_none(self.pneumonia_min),
            "n_normal": self.n_normal,
            "n_pneumonia": self.n_pneumonia,
            "fitted_on": self.fitted_on,
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def fit_conformal(
    labels: np.ndarray,
    probabilities: np.ndarray,
    coverage: float = DEFAULT_COVERAGE,
    fitted_on: str = "",
) -> ConformalSets:
    """Fit the per-class quantiles on labelled calibration probabilities.

    Args:
        labels: ``(n,)`` 0 (NORMAL) / 1 (PNEUMONIA).
        probabilities: ``(n,)`` PNEUMONIA probabilities in [0, 1] of the same images.
        coverage: Target coverage per class, in (0, 1).
        fitted_on: A few words on the calibration images, for the sidecar.

    Raises:
        DataError: Lengths differ or a class is missing.
        ConfigError: ``coverage`` outside (0, 1).
    """
    y = np.asarray(labels).reshape(-1)
    p = np.asarray(probabilities, np.float64).reshape(-1)
    if y.size != p.size or not ((y == 0).any() and (y == 1).any()):
        raise DataError("Conformal sets need probabilities and labels of both classes.")
    if not 0.0 < coverage < 1.0:
        raise ConfigError(f"coverage must be in (0, 1). Received: coverage={coverage!r}")
    q_normal = conformal_quantile(p[y == 0], coverage)  # NORMAL's score is 1 - (1 - p) = p
    q_pneumonia = conformal_quantile(1.0 - p[y == 1], coverage)
    return ConformalSets(
        coverage,
        normal_max=q_normal,
        pneumonia_min=1.0 - q_pneumonia,
        n_normal=int((y == 0).sum()),
        n_pneumonia=int((y == 1).sum()),
        fitted_on=fitted_on,
    )


def decisions(sets: np.ndarray) -> np.ndarray:
    """``(n,)`` decision strings from ``(n, 2)`` set membership (:meth:`ConformalSets.sets`)."""
    sets = np.asarray(sets, bool)
    out = np.where(sets[:, 1], CLASS_NAMES[1], CLASS_NAMES[0]).astype(object)
    out[sets[:, 0] & sets[:, 1]] = UNCERTAIN
    return out


def decide(members: tuple[str, ...]) -> str:
    """The decision for one set of class names: the one class, or ``UNCERTAIN``."""
    return UNCERTAIN if len(members) > 1 else (members[0] if members else UNCERTAIN)


def set_metrics(labels: np.ndarray, sets: np.ndarray) -> dict[str, float | None]:
    """Coverage, share uncertain and accuracy of the definite answers.

    Args:
        labels: ``(n,)`` 0/1.
        sets: ``(n, 2)`` bool set membership.

    Returns:
        ``coverage`` (share whose set holds the true class), ``coverage_normal``,
        ``coverage_pneumonia``, ``uncertain`` (share with both classes) and
        ``definite_accuracy`` (share right among the single-class sets; None if none).
    """
    y = np.asarray(labels).reshape(-1).astype(int)
    s = np.asarray(sets, bool)
    covered = s[np.arange(len(y)), y]
    both = s.all(axis=1)
    definite = ~both
    return {
        "coverage": float(covered.mean()) if len(y) else None,
        "coverage_normal": float(covered[y == 0].mean()) if (y == 0).any() else None,
        "coverage_pneumonia": float(covered[y == 1].mean()) if (y == 1).any() else None,
        "uncertain": float(both.mean()) if len(y) else None,
        "definite_accuracy": float(covered[definite].mean()) if definite.any() else None,
    }


def risk_coverage(
    labels: np.ndarray,
    probabilities: np.ndarray,
    threshold: float,
    levels: np.ndarray | None = None,
    seed: int = 0,
) -> list[dict[str, float | None]]:
    """How the share of definite answers trades against their accuracy as coverage moves.

    Each level's sets are fitted on a random half of the images (stratified by class) and
    measured on the other half, so no figure is fitted and scored on the same images.

    Args:
        labels: ``(n,)`` 0/1 with at least 4 images of each class.
        probabilities: ``(n,)`` PNEUMONIA probabilities.
        threshold: The model's decision threshold.
        levels: Coverage levels in (0, 1); default 0.80 to 0.99.
        seed: Seed of the halves.

    Returns:
        One dict per level: ``level``, ``definite_share`` (1 - uncertain) and the other keys of
        :func:`set_metrics`.
    """
    y = np.asarray(labels).reshape(-1).astype(int)
    p = np.asarray(probabilities, np.float64).reshape(-1)
    if min((y == 0).sum(), (y == 1).sum()) < 4:
        raise DataError("A risk-coverage view needs at least 4 images of each class.")
    levels = np.linspace(0.80, 0.99, 20) if levels is None else np.asarray(levels)
    rng = np.random.default_rng(seed)
    fit = np.zeros(len(y), bool)
    for k in (0, 1):
        members = rng.permutation(np.flatnonzero(y == k))
        fit[members[: len(members) // 2]] = True
    rows = []
    for level in levels:
        fitted = fit_conformal(y[fit], p[fit], float(level))
        metrics = set_metrics(y[~fit], fitted.sets(p[~fit], threshold))
        rows.append({"level": float(level), "definite_share": 1 - metrics["uncertain"], **metrics})
    return rows

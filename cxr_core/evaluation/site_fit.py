"""Fit a model to a new site from a small labelled sample, with honest cross-fitted figures.

A model's ranking travels between hospitals better than its operating point: on the official
test split the bundled ensemble ranked unseen children well (ROC AUC 0.974) but called a
quarter of the healthy ones PNEUMONIA at its stored threshold. Site fitting keeps the weights
and refits three small things on the site's own labelled images:

1. Platt scaling of the model's logit (``p = sigmoid(a z + b)``, :mod:`cxr_core.stats.calibration`):
   the intercept ``b`` absorbs the shift of prevalence and of the scores' level, which
   temperature scaling (``b = 0``) cannot; ``scripts/fit_conformal_and_grades.py`` compares the
   two at small n and the model card says which won;
2. the threshold, by the original model's own rule, on the calibrated site scores;
3. class-conditional conformal quantiles (:mod:`cxr_core.stats.conformal`) on the same scores.

The fitted model's figures are **cross-fitted**: the site's images are split into k folds by
patient (scikit-learn's ``StratifiedGroupKFold``); each fold is scored by a fit on the other
folds, and the figures, with bootstrap intervals, come from those out-of-fold verdicts. No image
is ever scored by a fit that saw it. The model written at the end is fitted on every image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from cxr_core.errors import DataError
from cxr_core.sidecar_sections import Figure
from cxr_core.stats import metrics as evaluate
from cxr_core.stats.calibration import PlattScaling, fit_platt
from cxr_core.stats.conformal import DEFAULT_COVERAGE, ConformalSets, fit_conformal, set_metrics

__all__ = [
    "FIGURES",
    "MIN_IMAGES",
    "MIN_PER_CLASS",
    "SiteFit",
    "check_site_size",
    "cross_fit",
    "fit_site",
    "fit_temperature",
    "site_figures",
]

#: Fewest labelled site images calibrate accepts, in all and of each class.
MIN_IMAGES = 40
MIN_PER_CLASS = 10
#: Figures the cross-fitting reports, each with a bootstrap 95% interval.
FIGURES = (
    "accuracy",
    "sensitivity",
    "specificity",
    "ece",
    "coverage",
    "uncertain",
    "definite_accuracy",
)
METHODS = ("platt", "temperature")


def check_site_size(labels: np.ndarray) -> None:
    """Refuse a site sample too small to fit and cross-fit on.

    Raises:
        DataError: Fewer than :data:`MIN_IMAGES` images or :data:`MIN_PER_CLASS` of a class;
            the message says how many are needed and how many were found.
    """
    y = np.asarray(labels).reshape(-1)
    normal, pneumonia = int((y == 0).sum()), int((y == 1).sum())
    if len(y) < MIN_IMAGES or min(normal, pneumonia) < MIN_PER_CLASS:
        raise DataError(
            f"fitting to a site needs at least {MIN_IMAGES} labelled images with at least "
            f"{MIN_PER_CLASS} of each class; found {len(y)} ({normal} NORMAL, "
            f"{pneumonia} PNEUMONIA)"
        )


def fit_temperature(labels: np.ndarray, logits: np.ndarray) -> PlattScaling:
    """Temperature scaling: Platt scaling without an intercept (``bias = 0``).

    Raises:
        DataError: One class only, or a slope that is not positive.
    """
    y = np.asarray(labels).reshape(-1)
    x = np.asarray(logits, np.float64).reshape(-1, 1)
    if y.size != x.shape[0] or len(np.unique(y)) != 2:
        raise DataError("Calibration needs logits and labels of both classes, of equal length.")
    regression = LogisticRegression(C=1e6, fit_intercept=False, max_iter=1000).fit(x, y)
    scale = float(regression.coef_[0, 0])
    if not np.isfinite(scale) or scale <= 0:
        raise DataError(f"Calibration failed: the fitted slope is {scale:.3g} (must be > 0).")
    return PlattScaling(scale, 0.0)


@dataclass(frozen=True)
class SiteFit:
    """Calibration, threshold and conformal sets fitted on one set of site images.

    Attributes:
        scaling: The map from the original logit to the calibrated one.
        threshold: The decision threshold on calibrated probabilities.
        conformal: Conformal bounds on calibrated probabilities.
    """

    scaling: PlattScaling
    threshold: float
    conformal: ConformalSets

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated PNEUMONIA probabilities of original ``logits``."""
        return expit(self.scaling.apply(logits))


def fit_site(
    labels: np.ndarray,
    logits: np.ndarray,
    rule: str = "sensitivity",
    target_sensitivity: float = 0.95,
    method: str = "platt",
    coverage: float = DEFAULT_COVERAGE,
    fitted_on: str = "",
) -> SiteFit:
    """Fit calibration, the threshold (by ``rule``) and conformal sets on site images.

    Args:
        labels: ``(n,)`` 0/1 of both classes.
        logits: ``(n,)`` the original model's logits.
        rule: ``cxr_core.stats.metrics.choose_threshold``'s rule (the original model's).
        target_sensitivity: For the ``sensitivity`` rule.
        method: ``platt`` or ``temperature``.
        coverage: Coverage of the conformal sets.
        fitted_on: A few words on the images, for the sidecar.

    Raises:
        DataError: One class only, or a calibration that would invert the ranking.
    """
    fitter = {"platt": fit_platt, "temperature": fit_temperature}[method]
    scaling = fitter(labels, logits)
    calibrated = expit(scaling.apply(logits))
    threshold = evaluate.choose_threshold(labels, calibrated, rule, target_sensitivity)
    sets = fit_conformal(labels, calibrated, coverage, fitted_on)
    return SiteFit(scaling, float(threshold), sets)


def _folds(labels: np.ndarray, groups: np.ndarray | None, folds: int, seed: int) -> list:
    """Fold indices, by patient when ``groups`` is given and has enough patients per class."""
    y = np.asarray(labels)
    if groups is not None:
        per_class = min(len(np.unique(groups[y == k])) for k in (0, 1))
        if per_class >= folds:
            splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
            return list(splitter.split(np.zeros(len(y)), y, groups))
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


@dataclass(frozen=True)
class CrossFit:
    """Out-of-fold results of :func:`cross_fit`.

    Attributes:
        probabilities: ``(n,)`` calibrated probabilities, each from a fit without its fold.
        verdicts: ``(n,)`` 0/1 verdicts at that fit's threshold.
        sets: ``(n, 2)`` conformal set membership from that fit.
        fold: ``(n,)`` the fold each image was scored in.
        folds: Number of folds.
    """

    probabilities: np.ndarray
    verdicts: np.ndarray
    sets: np.ndarray
    fold: np.ndarray
    folds: int


def cross_fit(
    labels: np.ndarray,
    logits: np.ndarray,
    groups: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
    fit: Callable[[np.ndarray, np.ndarray], SiteFit] | None = None,
) -> CrossFit:
    """Score every site image with a fit on the other folds.

    Args:
        labels: ``(n,)`` 0/1.
        logits: ``(n,)`` the original model's logits.
        groups: ``(n,)`` patient ids (images of one patient stay in one fold), or None.
        folds: Number of folds (fewer when a class has fewer images).
        seed: Seed of the folds.
        fit: ``(labels, logits) -> SiteFit``; default :func:`fit_site` with its defaults.

    Returns:
        The out-of-fold :class:`CrossFit`.
    """
    y = np.asarray(labels).reshape(-1).astype(int)
    z = np.asarray(logits, np.float64).reshape(-1)
    fit = fit or fit_site
    folds = max(2, min(folds, int(min((y == 0).sum(), (y == 1).sum()) // 2)))
    probabilities, verdicts = np.zeros(len(y)), np.zeros(len(y), int)
    sets, fold_of = np.zeros((len(y), 2), bool), np.zeros(len(y), int)
    for index, (train, test) in enumerate(_folds(y, groups, folds, seed)):
        fitted = fit(y[train], z[train])
        probabilities[test] = fitted.probabilities(z[test])
        verdicts[test] = probabilities[test] >= fitted.threshold
        sets[test] = fitted.conformal.sets(probabilities[test], fitted.threshold)
        fold_of[test] = index
    return CrossFit(probabilities, verdicts, sets, fold_of, folds)


def _point_figures(
    y: np.ndarray, p: np.ndarray, verdicts: np.ndarray, sets: np.ndarray | None
) -> dict[str, float | None]:
    right = verdicts == y
    values: dict[str, float | None] = {
        "accuracy": float(right.mean()),
        "sensitivity": float(right[y == 1].mean()) if (y == 1).any() else None,
        "specificity": float(right[y == 0].mean()) if (y == 0).any() else None,
        "ece": evaluate.expected_calibration_error(y, p) if len(np.unique(y)) == 2 else None,
    }
    if sets is not None:
        metrics = set_metrics(y, sets)
        values.update({k: metrics[k] for k in ("coverage", "uncertain", "definite_accuracy")})
    return values


def site_figures(
    labels: np.ndarray,
    probabilities: np.ndarray,
    verdicts: np.ndarray,
    sets: np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Figure]:
    """Accuracy, sensitivity, specificity, ECE and (with ``sets``) coverage, share uncertain
    and accuracy of definite answers, each with a percentile bootstrap 95% interval.

    Args:
        labels: ``(n,)`` 0/1.
        probabilities: ``(n,)`` PNEUMONIA probabilities (out-of-fold for a fitted model).
        verdicts: ``(n,)`` 0/1 verdicts.
        sets: ``(n, 2)`` conformal set membership, or None.
        n_resamples: Bootstrap resamples (0: no intervals).
        seed: Seed of the resamples.
    """
    y = np.asarray(labels).reshape(-1).astype(int)
    p, v = np.asarray(probabilities, np.float64), np.asarray(verdicts).astype(int)
    point = _point_figures(y, p, v, sets)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {name: [] for name in point}
    for _ in range(n_resamples):
        rows = rng.integers(0, len(y), len(y))
        if len(np.unique(y[rows])) < 2:
            continue
        drawn = _point_figures(y[rows], p[rows], v[rows], None if sets is None else sets[rows])
        for name, value in drawn.items():
            if value is not None:
                samples[name].append(value)
    figures = {}
    for name, value in point.items():
        if value is None:
            continue
        low = high = None
        if len(samples[name]) >= 20:
            low, high = (float(q) for q in np.quantile(samples[name], [0.025, 0.975]))
        figures[name] = Figure(float(value), low, high)
    return figures

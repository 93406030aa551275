"""An operating point chosen to hold over the stress suite, not only on average.

Pooling every key's scores and taking Youden's threshold (the earlier rule) lets the many mild
keys outvote the few that move the model most: on the official test split the pooled rule gave
specificity 0.74, and MedMNIST-C's detail-losing corruptions 0.32-0.85. The rules here look at
each key on its own:

- ``"worst_sensitivity"``: the highest threshold at which the *lowest* sensitivity over the keys
  is still at least ``target_sensitivity`` (so specificity is as high as the floor allows
  under every key);
- ``"worst_balanced"``: the threshold maximising the lowest balanced accuracy over the keys.

Only the clean scores and the keys of :data:`cxr_core.imaging.corruptions.CHOICE_FAMILIES` are used
(:func:`choice_logits`); the held-out families judge the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cxr_core.errors import ConfigError, DataError
from cxr_core.imaging.corruptions import CHOICE_FAMILIES

__all__ = ["SUITE_RULES", "choice_logits", "worst_case_threshold", "worst_case_table"]

#: Rules that :func:`worst_case_threshold` knows.
SUITE_RULES = ("worst_sensitivity", "worst_balanced")


def choice_logits(logits: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The clean scores and those of the choice families (keys ``family@severity``)."""
    return {
        name: values
        for name, values in logits.items()
        if "@" not in name or name.split("@", 1)[0] in CHOICE_FAMILIES
    }


def _rates(labels: np.ndarray, scores: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sensitivity and specificity of ``score >= t`` for each ``t`` of ``grid``."""
    positive = np.sort(scores[labels == 1])
    negative = np.sort(scores[labels == 0])
    # Counts over n, not 1 - share: 1 - 21/300 is 0.9299999999999999, under a 0.93 floor.
    sensitivity = (len(positive) - np.searchsorted(positive, grid, side="left")) / len(positive)
    specificity = np.searchsorted(negative, grid, side="left") / len(negative)
    return sensitivity, specificity


def worst_case_table(
    labels: Sequence[int], scores: Mapping[str, np.ndarray], grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The lowest sensitivity and lowest balanced accuracy over the keys, at each threshold.

    Args:
        labels: ``(n,)`` 0/1 labels, both classes present.
        scores: ``{key: (n,) probabilities}``.
        grid: ``(k,)`` thresholds.

    Returns:
        ``(worst_sensitivity, worst_balanced_accuracy)``, each ``(k,)``.
    """
    y = np.asarray(labels).reshape(-1)
    worst_sens = np.ones(len(grid))
    worst_bal = np.ones(len(grid))
    for values in scores.values():
        sens, spec = _rates(y, np.asarray(values, np.float64).reshape(-1), grid)
        worst_sens = np.minimum(worst_sens, sens)
        worst_bal = np.minimum(worst_bal, (sens + spec) / 2)
    return worst_sens, worst_bal


def worst_case_threshold(
    labels: Sequence[int],
    scores: Mapping[str, np.ndarray],
    rule: str = "worst_sensitivity",
    target_sensitivity: float = 0.93,
) -> float:
    """Choose a threshold on per-key validation scores by the suite's worst case.

    Candidates are every key's distinct scores; ``t`` means "PNEUMONIA when ``score >= t``".

    Args:
        labels: ``(n,)`` labels, 0 (NORMAL) or 1 (PNEUMONIA); both present.
        scores: ``{key: (n,) probabilities in [0, 1]}``, the same images under each key
            (pass :func:`choice_logits` through a sigmoid to keep the held-out families out).
        rule: One of :data:`SUITE_RULES`.
        target_sensitivity: Floor of the lowest sensitivity for ``"worst_sensitivity"``, in
            (0, 1].

    Returns:
        The threshold, one of the scores. Ties of ``"worst_balanced"`` go to the highest.

    Raises:
        ConfigError: Unknown rule or target outside (0, 1].
        DataError: No scores, lengths that differ from the labels, or one class only.
    """
    if rule not in SUITE_RULES:
        raise ConfigError(f"rule must be one of {', '.join(SUITE_RULES)}. Received: rule={rule!r}")
    if not 0 < target_sensitivity <= 1:
        raise ConfigError(
            "target_sensitivity must be in (0, 1]. "
            f"Received: target_sensitivity={target_sensitivity}"
        )
    y = np.asarray(labels).reshape(-1)
    if not scores or any(np.asarray(v).reshape(-1).shape != y.shape for v in scores.values()):
        raise DataError("Each key needs one score per labelled image.")
    if not (np.any(y == 1) and np.any(y == 0)):
        raise DataError("Choosing a threshold needs both NORMAL and PNEUMONIA cases.")
    grid = np.unique(np.concatenate([np.asarray(v, np.float64).ravel() for v in scores.values()]))
    worst_sens, worst_bal = worst_case_table(y, scores, grid)
    if rule == "worst_sensitivity":
        # worst_sens falls as the threshold rises; the lowest score always reaches 1.0.
        return float(grid[np.flatnonzero(worst_sens >= target_sensitivity).max()])
    best = np.flatnonzero(np.isclose(worst_bal, worst_bal.max(), rtol=0.0, atol=1e-12))
    return float(grid[best.max()])

"""A candidate model beside the current default, before it becomes everyone's default.

One click on "Use this model" once made a model with validation AUC 0.617 on 36 images the
server's default. :func:`compare_models` puts the two models' stored validation figures side by
side, with their independent checks (figures measured beyond the validation split, as text),
and lists in plain sentences why the candidate looks worse, so the page can ask first.
"""

from __future__ import annotations

from dataclasses import dataclass

from cxr_core.sidecar import ModelMetadata

__all__ = ["MIN_VALIDATION_IMAGES", "ComparisonRow", "ModelComparison", "compare_models"]

#: Fewer validation images than this and a model's figures are too uncertain to rank it by.
MIN_VALIDATION_IMAGES = 100
#: Differences this small are noise, not "worse".
_TOLERANCE = 0.005
#: (metric key, how the table names it, whether lower is better).
_COMPARED = (
    ("roc_auc", "ROC AUC", False),
    ("sensitivity", "Sensitivity", False),
    ("specificity", "Specificity", False),
    ("accuracy", "Accuracy", False),
    ("ece", "Calibration error (ECE)", True),
)


@dataclass(frozen=True)
class ComparisonRow:
    """One validation figure of both models (None where a model lacks it)."""

    metric: str
    label: str
    candidate: float | None
    current: float | None


@dataclass(frozen=True)
class ModelComparison:
    """The candidate beside the current default.

    Attributes:
        rows: Validation figures, one row per metric, plus the number of images.
        concerns: Plain sentences on why the candidate looks worse; empty when it does not.
        candidate_checks: The candidate's independent checks (plain text).
        current_checks: The current default's independent checks (plain text).
    """

    rows: tuple[ComparisonRow, ...]
    concerns: tuple[str, ...]
    candidate_checks: tuple[str, ...] = ()
    current_checks: tuple[str, ...] = ()

    @property
    def worse(self) -> bool:
        """Whether the page must ask before making the candidate the default."""
        return bool(self.concerns)


def compare_models(candidate: ModelMetadata, current: ModelMetadata | None) -> ModelComparison:
    """Compare a candidate's stored validation figures with the current default's.

    Args:
        candidate: The model about to become the default.
        current: The present default, or None when there is none.

    Returns:
        A :class:`ModelComparison`; ``worse`` when the candidate has no validation figures,
        fewer than :data:`MIN_VALIDATION_IMAGES` validation images, or a figure worse than the
        current default's by more than 0.005.
    """
    mine, theirs = candidate.metrics, current.metrics if current else None
    rows = [ComparisonRow("n", "Validation images", _count(mine.n), _count(theirs and theirs.n))]
    concerns = []
    if mine.value("roc_auc") is None:
        concerns.append("It has no stored validation figures.")
    if mine.n is not None and mine.n < MIN_VALIDATION_IMAGES:
        concerns.append(
            f"It was validated on {mine.n} images only (fewer than {MIN_VALIDATION_IMAGES}): "
            "its figures are too uncertain to rank it by."
        )
    for key, label, lower_better in _COMPARED:
        new, old = mine.value(key), theirs.value(key) if theirs else None
        rows.append(ComparisonRow(key, label, new, old))
        if new is None or old is None:
            continue
        if (new - old > _TOLERANCE) if lower_better else (old - new > _TOLERANCE):
            concerns.append(f"Its {label.lower()} is {new:.3f}; the current default's {old:.3f}.")
    return ModelComparison(
        tuple(rows),
        tuple(concerns),
        candidate.independent_checks,
        current.independent_checks if current else (),
    )


def _count(n: int | None) -> float | None:
    return None if n is None else float(n)

"""Class-conditional split-conformal sets: coverage per class, decisions, sidecar round trip."""

from __future__ import annotations

import numpy as np
import pytest

from cxr_core.errors import DataError, ModelLoadError
from cxr_core.fields import Fields
from cxr_core.sidecar_sections import read_conformal
from cxr_core.stats.conformal import (
    UNCERTAIN,
    conformal_quantile,
    decisions,
    fit_conformal,
    risk_coverage,
    set_metrics,
)


def synthetic_scores(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels with 40% NORMAL and overlapping logistic scores, like a model that ranks well."""
    y = (rng.random(n) < 0.6).astype(int)
    logits = rng.normal(np.where(y == 1, 1.5, -1.5), 1.4)
    return y, 1 / (1 + np.exp(-logits))


def test_quantile_is_the_finite_sample_rank_and_infinite_when_too_few() -> None:
    scores = np.arange(1, 20) / 20  # 19 scores: rank ceil(20 * 0.95) = 19 -> the largest
    assert conformal_quantile(scores, 0.95) == pytest.approx(0.95)
    assert conformal_quantile(scores[:10], 0.95) == np.inf


@pytest.mark.parametrize("coverage", [0.9, 0.95])
def test_empirical_coverage_holds_per_class_on_new_scores(coverage: float) -> None:
    rng = np.random.default_rng(0)
    covered = {0: [], 1: []}
    for _ in range(40):
        y_fit, p_fit = synthetic_scores(300, rng)
        y_new, p_new = synthetic_scores(2000, rng)
        sets = fit_conformal(y_fit, p_fit, coverage).sets(p_new, threshold=0.5)
        hit = sets[np.arange(len(y_new)), y_new]
        for k in (0, 1):
            covered[k].append(hit[y_new == k].mean())
    for k in (0, 1):
        # The guarantee is coverage >= target on average; the sets never overshoot by much.
        assert coverage - 0.01 <= np.mean(covered[k]) <= coverage + 0.04


def test_decision_is_uncertain_exactly_when_both_classes_are_in_the_set() -> None:
    rng = np.random.default_rng(1)
    y, p = synthetic_scores(400, rng)
    fitted = fit_conformal(y, p, 0.95)
    grid = np.linspace(0, 1, 201)
    sets = fitted.sets(grid, threshold=0.5)
    made = decisions(sets)
    both = sets.all(axis=1)
    assert both.any() and (~both).any()
    assert np.array_equal(made == UNCERTAIN, both)
    for probability, row, decision in zip(grid, sets, made, strict=True):
        assert fitted.decision(probability, 0.5) == decision
        assert len(fitted.prediction_set(probability, 0.5)) == int(row.sum())


def test_the_threshold_verdict_is_always_in_the_set() -> None:
    rng = np.random.default_rng(2)
    y, p = synthetic_scores(400, rng)
    fitted = fit_conformal(y, p, 0.8)
    grid = np.linspace(0, 1, 101)
    for threshold in (0.2, 0.5, 0.9):
        sets = fitted.sets(grid, threshold)
        assert sets[np.arange(len(grid)), (grid >= threshold).astype(int)].all()
        definite = ~sets.all(axis=1)
        assert np.array_equal(sets[definite, 1], grid[definite] >= threshold)


def test_set_metrics_count_coverage_uncertain_and_definite_accuracy() -> None:
    y = np.array([0, 0, 1, 1])
    sets = np.array([[True, False], [True, True], [True, False], [False, True]])
    metrics = set_metrics(y, sets)
    assert metrics["coverage"] == 0.75 and metrics["uncertain"] == 0.25
    assert metrics["definite_accuracy"] == pytest.approx(2 / 3)
    assert metrics["coverage_pneumonia"] == 0.5


def test_risk_coverage_trades_definite_answers_for_accuracy() -> None:
    y, p = synthetic_scores(2000, np.random.default_rng(3))
    rows = risk_coverage(y, p, 0.5, levels=np.array([0.8, 0.95, 0.99]))
    shares = [r["definite_share"] for r in rows]
    assert shares[0] > shares[1] > shares[2]
    assert rows[2]["definite_accuracy"] > rows[0]["definite_accuracy"]


def test_fitting_needs_both_classes() -> None:
    with pytest.raises(DataError):
        fit_conformal(np.zeros(20), np.linspace(0, 1, 20))


def test_the_sidecar_section_round_trips_with_infinite_bounds_as_null() -> None:
    fitted = fit_conformal(np.array([0] * 5 + [1] * 30), np.linspace(0, 1, 35), 0.95)
    entry = fitted.to_dict()
    assert entry["normal_max"] is None  # 5 NORMAL images cannot give 95%: always plausible
    read = read_conformal(Fields({"conformal": entry}, "test", ModelLoadError))
    assert read == fitted

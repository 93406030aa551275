"""Threshold rules on the stress suite's worst case, on synthetic stressed scores."""

from __future__ import annotations

import numpy as np
import pytest

from cxr_core.config import TrainConfig
from cxr_core.errors import ConfigError, DataError
from cxr_core.evaluation import stress, suite_threshold
from cxr_core.stats import metrics as evaluate


def _stressed_scores() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Clean logits, a key that lowers positives a lot (sensitivity falls), one that raises
    negatives (specificity falls, "less detail reads as sick") and five mild keys."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 300)
    clean = np.where(labels == 1, 2.5, -2.5) + rng.normal(0, 1, 600)
    logits = {"clean": clean, "darker@5": clean - 2.0 * labels, "pixelate@5": clean + 1.5}
    for k in range(5):
        logits[f"mild@{k + 1}"] = clean + rng.normal(0, 0.1, 600)
    return labels, logits


def _worst(labels: np.ndarray, logits: dict[str, np.ndarray], threshold: float) -> dict:
    sens = min(np.mean(stress.sigmoid(v[labels == 1]) >= threshold) for v in logits.values())
    spec = min(np.mean(stress.sigmoid(v[labels == 0]) < threshold) for v in logits.values())
    balanced = min(
        (
            np.mean(stress.sigmoid(v[labels == 1]) >= threshold)
            + np.mean(stress.sigmoid(v[labels == 0]) < threshold)
        )
        / 2  # noqa: E501
        for v in logits.values()
    )
    return {"sensitivity": sens, "specificity": spec, "balanced": balanced}


def _probabilities(logits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: stress.sigmoid(values) for name, values in logits.items()}


def test_worst_sensitivity_rule_holds_the_floor_on_every_key_where_pooling_does_not() -> None:
    labels, logits = _stressed_scores()
    y, pooled = stress.pooled(labels, logits)
    pooled_youden = evaluate.choose_threshold(y, stress.sigmoid(pooled), "youden")
    pooled_sens = evaluate.choose_threshold(y, stress.sigmoid(pooled), "sensitivity", 0.93)
    rule = suite_threshold.worst_case_threshold(
        labels, _probabilities(logits), "worst_sensitivity", 0.93
    )
    assert _worst(labels, logits, rule)["sensitivity"] >= 0.93
    assert _worst(labels, logits, pooled_youden)["sensitivity"] < 0.93
    assert _worst(labels, logits, pooled_sens)["sensitivity"] < 0.93  # mild keys outvote
    # The highest such threshold: one score higher and some key falls under the floor.
    grid = np.unique(np.concatenate(list(_probabilities(logits).values())))
    above = grid[np.searchsorted(grid, rule) + 1]
    assert _worst(labels, logits, above)["sensitivity"] < 0.93


def test_worst_balanced_rule_maximises_the_lowest_balanced_accuracy() -> None:
    labels, logits = _stressed_scores()
    rule = suite_threshold.worst_case_threshold(labels, _probabilities(logits), "worst_balanced")
    best = _worst(labels, logits, rule)["balanced"]
    for other in np.linspace(0.01, 0.99, 99):
        assert _worst(labels, logits, other)["balanced"] <= best + 1e-12
    y, pooled = stress.pooled(labels, logits)
    pooled_youden = evaluate.choose_threshold(y, stress.sigmoid(pooled), "youden")
    assert best > _worst(labels, logits, pooled_youden)["balanced"]


def test_choice_logits_keep_clean_and_the_choice_families_only() -> None:
    logits = {"clean": 0, "pixelate@1": 1, "jpeg_compression@1": 2, "zoom_in@5": 3, "markers@2": 4}
    assert list(suite_threshold.choice_logits(logits)) == ["clean", "pixelate@1", "zoom_in@5"]


def test_bad_rules_targets_and_scores_are_refused() -> None:
    labels, logits = _stressed_scores()
    probabilities = _probabilities(logits)
    with pytest.raises(ConfigError, match="Received"):
        suite_threshold.worst_case_threshold(labels, probabilities, "median")
    with pytest.raises(ConfigError, match="Received"):
        suite_threshold.worst_case_threshold(labels, probabilities, target_sensitivity=1.5)
    with pytest.raises(DataError):
        suite_threshold.worst_case_threshold(labels[:10], probabilities)
    with pytest.raises(DataError):
        suite_threshold.worst_case_threshold(np.ones(600), probabilities)
    assert TrainConfig(threshold_rule="worst_sensitivity").threshold_rule == "worst_sensitivity"
    with pytest.raises(ConfigError, match="worst_balanced"):
        TrainConfig(threshold_rule="worst")


def test_finalize_chooses_by_the_rule_on_choice_keys_only() -> None:
    import dataclasses

    from cxr_core.config import RunConfig
    from cxr_core.training.finalize import choose_suite_threshold

    labels, base = _stressed_scores()
    choice = {
        "clean": base["clean"],
        "gaussian_blur@5": base["darker@5"],
        "pixelate@5": base["pixelate@5"],
    }
    held_out = {"jpeg_compression@5": base["clean"] - 4.0 * labels}
    config = RunConfig(data_root="data")
    train = dataclasses.replace(
        config.train, threshold_rule="worst_sensitivity", target_sensitivity=0.93
    )
    config = dataclasses.replace(config, train=train)
    chosen = choose_suite_threshold(config, labels, {**choice, **held_out})
    rule = suite_threshold.worst_case_threshold
    assert chosen == rule(labels, _probabilities(choice), "worst_sensitivity", 0.93)
    assert chosen > rule(labels, _probabilities({**choice, **held_out}), "worst_sensitivity", 0.93)

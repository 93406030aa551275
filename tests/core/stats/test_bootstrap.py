"""Tests for cxr_core.stats.bootstrap: intervals around the point estimates, and the weighted
metrics of every resample against scikit-learn on the resampled cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from cxr_core.errors import ConfigError
from cxr_core.stats import bootstrap
from cxr_core.stats.bootstrap import bootstrap_intervals
from cxr_core.stats.metrics import classification_metrics
from tests.core.stats.cases import S, Y, random_cases

# Any warning (zero division, undefined metric) is a failure.
pytestmark = pytest.mark.filterwarnings("error")


def test_bootstrap_is_deterministic_for_a_seed():
    y, s = random_cases()
    first = bootstrap_intervals(y, s, 0.5, n_resamples=200, seed=7)
    assert bootstrap_intervals(y, s, 0.5, n_resamples=200, seed=7) == first
    assert bootstrap_intervals(y, s, 0.5, n_resamples=200, seed=8) != first


def test_bootstrap_intervals_contain_the_point_estimates():
    y, s = random_cases()
    point = classification_metrics(y, s, 0.5)
    intervals = bootstrap_intervals(y, s, 0.5, n_resamples=300, metrics=bootstrap.BOOTSTRAP_METRICS)
    assert set(intervals) == set(bootstrap.BOOTSTRAP_METRICS)
    for name, (low, high) in intervals.items():
        assert type(low) is float and type(high) is float
        assert low <= point[name] <= high, name
        assert low < high, name


def test_bootstrap_wider_level_gives_wider_interval():
    y, s = random_cases()
    narrow = bootstrap_intervals(y, s, 0.5, n_resamples=300, level=0.5)["roc_auc"]
    wide = bootstrap_intervals(y, s, 0.5, n_resamples=300, level=0.99)["roc_auc"]
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_resample_metrics_match_sklearn_on_the_resampled_cases():
    y, s = random_cases(n=120)
    counts = bootstrap._resample_counts(np.random.default_rng(0), y.size, 20)
    assert (counts.sum(axis=1) == y.size).all()
    values = bootstrap._weighted_metrics(counts, y, s, 0.5, bootstrap.BOOTSTRAP_METRICS)
    for row, weights in enumerate(counts.astype(int)):
        cases = np.repeat(np.arange(y.size), weights)
        expected = classification_metrics(y[cases], s[cases], 0.5)
        assert values["roc_auc"][row] == pytest.approx(roc_auc_score(y[cases], s[cases]))
        assert values["pr_auc"][row] == pytest.approx(average_precision_score(y[cases], s[cases]))
        for name in bootstrap.BOOTSTRAP_METRICS:
            assert values[name][row] == pytest.approx(expected[name]), name


def test_bootstrap_skips_one_class_resamples_for_aucs():
    intervals = bootstrap_intervals([0, 0, 0, 0], [0.1, 0.2, 0.6, 0.3], 0.5, n_resamples=50)
    assert intervals["roc_auc"] is None and intervals["pr_auc"] is None
    assert intervals["sensitivity"] is None
    assert intervals["specificity"] is not None


def test_bootstrap_auc_interval_exists_when_some_resamples_have_one_class():
    # 1 positive in 5 cases: about a third of resamples miss it and are skipped.
    intervals = bootstrap_intervals(
        [0, 0, 0, 0, 1], [0.1, 0.2, 0.6, 0.3, 0.9], 0.5, n_resamples=200
    )
    assert intervals["roc_auc"] == (1.0, 1.0)


@pytest.mark.parametrize(
    "settings",
    [
        {"n_resamples": 0},
        {"seed": -1},
        {"level": 1.0},
        {"metrics": ("auc",)},
        {"metrics": "ece"},
        {"metrics": None},
    ],
)
def test_bootstrap_rejects_bad_settings(settings):
    with pytest.raises(ConfigError):
        bootstrap_intervals(Y, S, 0.5, **settings)

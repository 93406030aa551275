"""The verdict's score against its threshold: text that never reads backwards, and the scale."""

from __future__ import annotations

import numpy as np
import pytest

from cxr_core.errors import ConfigError
from cxr_core.explain.verdict import (
    blank_map_note,
    decision_words,
    heat_legend,
    score_scale,
    score_texts,
)


@pytest.mark.parametrize(
    ("probability", "threshold"),
    [(0.5129, 0.513), (0.5130001, 0.513), (0.82, 0.871), (0.871, 0.871),
     (0.1234567891, 0.1234567892), (np.float32(0.51300001), 0.513), (0.0, 1e-13),
     (1.0, 0.9999999999999)],
)  # fmt: skip
def test_score_and_threshold_never_print_equal_while_deciding_differently(probability, threshold):
    shown_p, shown_t = score_texts(probability, threshold)
    if float(probability) == float(threshold):
        assert shown_p == shown_t
    else:
        assert shown_p != shown_t
        # The printed numbers decide the same way as the real ones.
        assert (float(shown_p) >= float(shown_t)) == (float(probability) >= float(threshold))


def test_three_decimals_when_they_suffice_and_the_words_follow_the_decision() -> None:
    assert score_texts(0.82, 0.871) == ("0.820", "0.871")
    assert score_texts(0.5129, 0.513) == ("0.5129", "0.5130")
    assert score_texts(0.99996, 0.871) == ("0.99996", "0.87100")  # never "1.000" unless it is
    assert score_texts(1.0, 0.871) == ("1.000", "0.871")
    assert decision_words(0.513, 0.513) == "at or above"
    assert decision_words(0.5129, 0.513) == "below"


def _marker_column(scale: np.ndarray) -> int:
    """x of the score triangle: the darkest column above the bar."""
    top = scale.shape[0] // 3
    band = scale[top - 8 : top - 1].astype(int).sum(axis=2)
    return int(np.argmin(band.sum(axis=0)))


def test_the_scale_puts_the_score_and_the_red_side_where_they_belong() -> None:
    low, high = score_scale(0.2, 0.6, width=600), score_scale(0.9, 0.6, width=600)
    assert low.shape == high.shape and low.dtype == np.uint8
    assert _marker_column(low) < 600 * 0.35 < 600 * 0.85 < _marker_column(high)
    row = low[low.shape[0] // 3 + 3]
    left, right = row[60].astype(int), row[560].astype(int)
    assert left[1] > left[0]  # green-tinted below the threshold
    assert right[0] > right[1]  # red-tinted at or above it


def test_the_scale_refuses_values_outside_0_1() -> None:
    with pytest.raises(ConfigError, match="probability and threshold"):
        score_scale(1.2, 0.5)


def test_a_blank_map_gets_an_explanation_and_a_real_one_none() -> None:
    assert "blank" in blank_map_note(np.zeros((8, 8), np.float32))
    assert blank_map_note(np.eye(8, dtype=np.float32)) is None


def test_the_heat_legend_is_numbered_and_runs_low_to_high() -> None:
    legend = heat_legend(480, alpha=1.0)
    assert legend.shape[1] == 480 and legend.shape[0] > 40
    bar_row = legend[6].astype(int)
    assert abs(bar_row[25] - bar_row[455]).sum() > 100  # transparent grey to full colour

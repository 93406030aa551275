"""Tests for cxr_core.explain.heatmap: an overlay that keeps the X-ray visible, and its legend."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cxr_core.errors import ConfigError
from cxr_core.explain.heatmap import COLORMAP, colour_bar, heat_opacity, overlay

GREY = 100


def heat_ramp(width: int = 256) -> np.ndarray:
    """A 4-row map rising from 0 (left) to 1 (right)."""
    return np.repeat(np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :], 4, axis=0)


def top_colours() -> np.ndarray:
    """The colour map's RGB colour of each heat level 0-255, painted at full opacity."""
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None, :], COLORMAP)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[0].astype(float)


def measured_opacity(blended: np.ndarray) -> np.ndarray:
    """Solve ``out = grey + a * (colour - grey)`` for ``a`` along a heat ramp over flat grey."""
    colours = top_colours()
    levels = np.rint(np.linspace(0.0, 1.0, blended.shape[1]) * 255).astype(int)
    target = colours[levels] - GREY
    channel = np.abs(target).argmax(axis=-1)  # the channel that moves most, for precision
    columns = np.arange(blended.shape[1])
    moved = blended[0].astype(float)[columns, channel] - GREY
    return moved / target[columns, channel]


def test_overlay_leaves_the_xray_untouched_where_the_heat_is_low():
    pixels = np.random.default_rng(0).integers(0, 256, (40, 256), dtype=np.uint8)
    heat = np.zeros((40, 256), np.float32)
    heat[:, 128:] = 0.1  # faint heat, below the transparent floor
    blended = overlay(pixels, heat, alpha=1.0)
    np.testing.assert_array_equal(blended, np.repeat(pixels[..., None], 3, axis=-1))


def test_overlay_opacity_grows_with_the_heat_up_to_the_chosen_maximum():
    pixels = np.full((4, 256), GREY, np.uint8)
    for alpha in (0.3, 0.6, 1.0):
        opacity = measured_opacity(overlay(pixels, heat_ramp(), alpha=alpha))
        assert np.abs(opacity[:30]).max() < 0.02  # heat < 0.12: transparent
        assert (np.diff(opacity) > -0.03).all()  # never falls (to rounding)
        assert opacity[-20:].min() == pytest.approx(alpha, abs=0.03)  # strongest: the maximum
        assert 0.1 * alpha < opacity[128] < 0.9 * alpha  # mid heat: partly see-through


def test_heat_opacity_is_zero_at_zero_and_the_maximum_at_one():
    values = heat_opacity(np.array([0.0, 0.15, 0.5, 0.85, 1.0]), alpha=0.8)
    assert values[0] == values[1] == 0.0 and values[3] == values[4] == pytest.approx(0.8)
    assert 0.0 < values[2] < 0.8


def test_overlay_at_zero_opacity_shows_only_the_xray():
    pixels = np.random.default_rng(9).integers(0, 256, (33, 47), dtype=np.uint8)
    blended = overlay(pixels, np.random.default_rng(10).random((33, 47)), alpha=0.0)
    np.testing.assert_array_equal(blended, np.repeat(pixels[..., None], 3, axis=-1))


def test_colour_map_is_perceptual_lightness_rises_with_the_heat():
    # Jet's lightness rises then falls (yellow is lighter than red); a perceptual map's rises.
    lab = cv2.cvtColor(top_colours()[None].astype(np.uint8), cv2.COLOR_RGB2LAB)[0]
    lightness = lab[:, 0].astype(int)
    assert (np.diff(lightness) >= -1).all() and lightness[-1] - lightness[0] > 200


def test_overlay_takes_the_cached_uint8_map_like_the_float_one():
    pixels = np.random.default_rng(1).integers(0, 256, (30, 50), dtype=np.uint8)
    heat = np.random.default_rng(2).random((30, 50)).astype(np.float32)
    as_uint8 = np.rint(heat * 255).astype(np.uint8)
    difference = overlay(pixels, heat).astype(int) - overlay(pixels, as_uint8).astype(int)
    assert np.abs(difference).max() <= 2


def test_overlay_resizes_a_smaller_heatmap_and_refuses_bad_opacity():
    pixels = np.zeros((50, 70), np.uint8)
    assert overlay(pixels, np.ones((7, 7), np.float32)).shape == (50, 70, 3)
    with pytest.raises(ConfigError, match="alpha"):
        overlay(pixels, np.ones((50, 70), np.float32), alpha=1.5)
    with pytest.raises(ConfigError, match="heatmap must be a 2-D array"):
        overlay(pixels, np.ones((50, 70, 3), np.float32))


def test_overlay_keeps_nan_heat_transparent():
    pixels = np.full((10, 10), GREY, np.uint8)
    heat = np.full((10, 10), np.nan, np.float32)
    assert (overlay(pixels, heat, alpha=1.0) == GREY).all()


def test_colour_bar_runs_from_the_background_to_the_strongest_colour():
    bar = colour_bar(200, 12, alpha=1.0, background=GREY).astype(int)
    assert bar.shape == (12, 200, 3)
    assert (bar[:, :20] == GREY).all()  # low heat: transparent
    np.testing.assert_allclose(bar[0, -1], top_colours()[255], atol=2)
    faint = colour_bar(200, 12, alpha=0.25, background=GREY).astype(int)
    assert np.abs(faint[0, -1] - GREY).max() < np.abs(bar[0, -1] - GREY).max() / 2

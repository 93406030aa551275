"""Tests for cxr_core.explain.report: the downloadable PNG report of one prediction."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image

from cxr_core.errors import ConfigError, InvalidImageError
from cxr_core.explain.report import render_report, report_filename

WHEN = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


def xray(height: int = 300, width: int = 200) -> np.ndarray:
    rows = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return np.repeat(rows, width, axis=1).astype(np.uint8)


def red_overlay(height: int = 300, width: int = 200) -> np.ndarray:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 0] = 220
    return image


def render(**changes) -> Image.Image:
    arguments = {
        "filename": "chest.png",
        "label": "PNEUMONIA",
        "probability": 0.87,
        "threshold": 0.42,
        "model_name": "bundled",
        "created": WHEN,
        "panel_size": 256,
    }
    arguments.update(changes)
    png = render_report(xray(), red_overlay(), **arguments)
    return Image.open(io.BytesIO(png))


def test_report_is_an_rgb_png_two_panels_wide():
    image = render()
    assert image.format == "PNG" and image.mode == "RGB"
    assert image.width == 2 * 256 + 3 * 32


def test_report_places_the_xray_left_and_the_overlay_right():
    pixels = np.asarray(render())
    top, side = 72 + 32, 256
    # The 300 x 200 image is scaled to 256 high: 171 wide, centred on a white panel.
    left_centre = pixels[top + side // 2, 32 + side // 2]
    right_centre = pixels[top + side // 2, 2 * 32 + side + side // 2]
    assert left_centre[0] == left_centre[1] == left_centre[2]  # grey X-ray
    assert right_centre[0] > 200 and right_centre[1] < 30  # red overlay
    assert (pixels[top + side // 2, 32 + 5] == 255).all()  # white margin, no black square


def test_a_224_pixel_upload_is_enlarged_to_fill_its_panel():
    small = np.full((224, 224), 100, np.uint8)
    png = render_report(
        small, red_overlay(224, 224), filename="small.png", label="NORMAL", probability=0.1,
        threshold=0.5, model_name="m", panel_size=512,
    )  # fmt: skip
    pixels = np.asarray(Image.open(io.BytesIO(png))).astype(int)
    top = 72 + 32
    panel = pixels[top : top + 512, 32 : 32 + 512]
    rows, columns = (np.abs(panel - 100).max(axis=-1) <= 2).nonzero()
    assert np.ptp(rows) + 1 >= 510 and np.ptp(columns) + 1 >= 510  # 224 px drawn at 512


def test_report_draws_the_heatmap_legend_under_the_overlay():
    pixels = np.asarray(render(opacity=1.0))
    side, top = 256, 72 + 32
    bar_top, left = top + side + 36, 2 * 32 + side
    # The numbered legend (cxr_core.explain.verdict.heat_legend) insets its bar by side // 24.
    inset = side // 24 + 2
    bar = pixels[bar_top + 4 : bar_top + 12, left + inset : left + side - inset].astype(int)
    low, high = bar[:, :8].mean(axis=(0, 1)), bar[:, -8:].mean(axis=(0, 1))
    assert np.ptp(low) < 6 and abs(low.mean() - 128) < 6  # low heat: transparent over grey
    assert high[0] > 200 and high[1] > 200 and high[2] < 200  # high heat: inferno's pale yellow
    hue_steps = np.abs(np.diff(bar.mean(axis=0), axis=0)).sum(axis=-1)
    assert (hue_steps < 40).all()  # a smooth ramp, no stripe


def test_report_legend_follows_the_overlay_opacity():
    faint = np.asarray(render(opacity=0.2))
    strong = np.asarray(render(opacity=1.0))
    side, top = 256, 72 + 32
    row, column = top + side + 36 + 9, 2 * 32 + side + side - 16
    assert strong[row, column, 0] > faint[row, column, 0] + 60  # fainter yellow: more grey


def test_report_ends_with_the_disclaimer_band():
    pixels = np.asarray(render())
    assert tuple(pixels[-5, 5]) == (253, 236, 206)


def test_report_text_changes_with_the_verdict():
    pneumonia = np.asarray(render())
    normal = np.asarray(render(label="NORMAL", probability=0.12))
    assert pneumonia.shape == normal.shape and not np.array_equal(pneumonia, normal)


def test_report_refuses_a_probability_outside_the_unit_interval():
    with pytest.raises(ConfigError, match="probability must be a number in"):
        render(probability=1.5)


def test_report_refuses_a_float_image():
    with pytest.raises(InvalidImageError, match="uint8 image array"):
        render_report(
            xray().astype(np.float32),
            red_overlay(),
            filename="x",
            label="NORMAL",
            probability=0.1,
            threshold=0.5,
            model_name="m",
        )


@pytest.mark.parametrize(
    ("upload", "expected"),
    [
        ("chest.dcm", "chest_report.png"),
        ("scan.final.jpeg", "scan.final_report.png"),
        ("../../etc/passwd", "passwd_report.png"),
        ("my x-ray (1).png", "my_x-ray__1_report.png"),
        ("", "xray_report.png"),
    ],
)
def test_report_filename_is_a_safe_name_from_the_upload(upload, expected):
    assert report_filename(upload) == expected

"""Tests for cxr_core.report: the downloadable PNG report of one prediction."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image

from cxr_core.errors import ConfigError, InvalidImageError
from cxr_core.report import render_report, report_filename

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
    # The 300 x 200 image is fitted into the 256 square: 171 wide, centred horizontally.
    left_centre = pixels[top + side // 2, 32 + side // 2]
    right_centre = pixels[top + side // 2, 2 * 32 + side + side // 2]
    assert left_centre[0] == left_centre[1] == left_centre[2]  # grey X-ray
    assert right_centre[0] > 200 and right_centre[1] < 30  # red overlay
    assert (pixels[top + side // 2, 32 + 5] == 0).all()  # black letterbox beside the X-ray


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

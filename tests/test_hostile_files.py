"""Hostile files, built on the spot: unreadable uploads on the Diagnose page, decompression
bombs, malformed or non-regular files on disk, and writes that hit a full or read-only disk.
Each asserts the one-line error or the friendly message, and no traceback."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from app_helpers import point_app_at
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")


@pytest.fixture
def diagnose(monkeypatch, tmp_path, tiny_model_dir, tiny_dataset) -> AppTest:
    point_app_at(monkeypatch, tiny_model_dir, tmp_path / "runs", tiny_dataset)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/diagnose.py").run()
    assert not at.exception, at.exception
    return at


def truncated_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (200, 200), 90).save(buffer, "PNG")
    return buffer.getvalue()[:60]


UNREADABLE = [
    ("empty.png", b""),
    ("cut.png", truncated_png()),
    ("drawing.png", b"<svg xmlns='http://www.w3.org/2000/svg'></svg>"),
    ("page.png", b"<!doctype html><html><body>hi</body></html>"),
    ("anim.gif", b"GIF89a" + bytes(64)),
    ("notes.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"),
]


@pytest.mark.parametrize("count", [1, 2])
def test_diagnose_shows_only_the_friendly_message_when_no_file_is_readable(diagnose, count):
    files = [(name, data, "image/png") for name, data in UNREADABLE[:count]]
    diagnose.file_uploader[0].set_value(files).run()
    assert not diagnose.exception, diagnose.exception
    errors = [e.value for e in diagnose.error]
    assert len(errors) == count and all("could not be analysed" in e for e in errors)


def test_diagnose_names_each_unreadable_kind(diagnose):
    files = [(name, data, "image/png") for name, data in UNREADABLE]
    diagnose.file_uploader[0].set_value(files).run()
    assert not diagnose.exception, diagnose.exception
    assert len(diagnose.error) == len(UNREADABLE)
    assert len(diagnose.dataframe[0].value) == len(UNREADABLE)


# --- Defect 1: decoding to a bounded budget -------------------------------------------------


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def rgba_png(width: int, height: int) -> bytes:
    """White, opaque on the left half and transparent on the right: composites to a split."""
    import numpy as np
    from PIL import Image

    rgba = np.full((height, width, 4), 255, np.uint8)
    rgba[:, width // 2 :, 3] = 0
    return png(Image.fromarray(rgba))


def numpy_peak_bytes(call) -> int:
    """Peak bytes NumPy allocated during ``call()`` (tracemalloc sees NumPy's buffers)."""
    import tracemalloc

    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_rgba_png_is_reduced_in_strips_without_float_copies_of_the_whole_image():
    from cxr_core.imaging import read_image

    data = rgba_png(4000, 3000)
    decoded = read_image(data, max_side=1024)
    assert decoded.pixels.shape == (1000, 1333)  # 1/3: the longer side stays >= 1024
    assert "decoded at 1/3 scale" in decoded.info["note"]
    assert decoded.pixels[:, :600].min() == 255 and decoded.pixels[:, 700:].max() == 0
    # The old path made float64 RGBA copies: over 60 bytes per source pixel.
    assert numpy_peak_bytes(lambda: read_image(data, max_side=1024)) < 1.5 * 4000 * 3000


def test_a_16bit_rgba_png_is_reduced_and_stretched_within_budget():
    import cv2
    import numpy as np

    from cxr_core.imaging import read_image

    image = np.zeros((2400, 3000, 4), np.uint16)
    image[..., :3] = np.linspace(1000, 3000, 3000, dtype=np.float32).astype(np.uint16)[:, None]
    image[..., 3] = 65535
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    data = encoded.tobytes()
    decoded = read_image(data, max_side=1024)
    assert decoded.pixels.shape == (1200, 1500) and decoded.info["bit_depth"] == 16
    assert decoded.pixels[:, 0].max() <= 1 and decoded.pixels[:, -1].min() >= 254
    # OpenCV's uint16 RGBA buffer is 8 bytes per pixel; the whole stays under the budget of
    # 12 bytes per source pixel (the old path's float64 copies took over 50).
    assert numpy_peak_bytes(lambda: read_image(data, max_side=1024)) < 12 * 2400 * 3000


def test_an_rle_dicom_is_reduced_before_float_conversion():
    import numpy as np
    from pydicom import dcmread
    from pydicom.uid import RLELossless
    from test_imaging import dicom_bytes

    from cxr_core.imaging import read_image

    pixels = np.tile(np.linspace(100, 4000, 2400).astype(np.uint16), (2000, 1))
    dataset = dcmread(io.BytesIO(dicom_bytes(pixels)))
    dataset.compress(RLELossless)
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    data = buffer.getvalue()
    decoded = read_image(data, max_side=1024)
    assert decoded.pixels.shape == (1000, 1200)
    assert (decoded.info["width"], decoded.info["height"]) == (2400, 2000)
    assert "decoded at 1/2 scale" in decoded.info["note"]
    assert decoded.pixels[:, 0].max() <= 1 and decoded.pixels[:, -1].min() >= 254
    # pydicom's RLE decoding costs a few bytes per pixel; the whole stays under the budget of
    # 12 bytes per source pixel (the old path's float64 copies of the frame took over 25).
    assert numpy_peak_bytes(lambda: read_image(data, max_side=1024)) < 12 * 2400 * 2000


def test_a_decompression_bomb_is_refused_from_its_header():
    import struct
    import zlib

    from cxr_core import imaging
    from cxr_core.errors import InvalidImageError

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 6, 0, 0, 0)  # 3.6 gigapixels RGBA
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(InvalidImageError) as caught:
        imaging.read_image(bomb, max_side=1024)
    assert str(caught.value) == imaging.TOO_MANY_PIXELS

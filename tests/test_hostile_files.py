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

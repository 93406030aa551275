"""Hostile uploads on the Diagnose page: names and DICOM fields are shown as text, never as
Markdown; too many files are not all decoded; a huge JPEG is decoded reduced."""

from __future__ import annotations

import io
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cxr_core.imaging.decode import read_image
from cxr_core.markdown import JOINER, code_span, escape_markdown
from tests.app_helpers import make_tiny_model
from tests.core.imaging.test_imaging import dicom_bytes

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
HOSTILE = [
    "**bold**[link](http://x).png",
    "![t](http://203.0.113.9/t.png).jpg",
    "<img src=x onerror=alert(1)>.png",
    ":red[red] $x^2$ `code` www.evil.example.png",
]
MARKDOWN_KINDS = ("markdown", "caption", "error", "warning", "info", "success", "subheader")


@pytest.fixture
def diagnose(monkeypatch, tmp_path_factory, tiny_dataset) -> AppTest:
    models = tmp_path_factory.mktemp("models")
    make_tiny_model(models, tiny_dataset)
    monkeypatch.setenv("CXR_MODELS_DIR", str(models))
    monkeypatch.setenv("CXR_RUNS_DIR", str(tmp_path_factory.mktemp("runs")))
    monkeypatch.setenv("CXR_RAISE_ERRORS", "1")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/diagnose.py").run()
    assert not at.exception, at.exception
    return at


def png_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (80, 96), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def markdown_sources(at: AppTest) -> list[str]:
    return [str(e.value) for kind in MARKDOWN_KINDS for e in getattr(at, kind)]


def unescaped_markup(source: str) -> list[str]:
    """Markdown or HTML constructs in ``source`` that are not backslash-escaped."""
    patterns = (r"(?<!\\)\]\((?!\\)", r"(?<!\\)!\[", r"(?<!\\)<img", r"(?<!\\)\*\*bold")
    return [p for p in patterns if re.search(p, source)]


def test_hostile_upload_names_are_shown_as_text(diagnose: AppTest) -> None:
    files = [(name, png_bytes(i), "image/png") for i, name in enumerate(HOSTILE)]
    files.append(("[click me](http://evil.example).png", b"not an image", "image/png"))
    diagnose.file_uploader[0].set_value(files).run()
    assert not diagnose.exception, diagnose.exception
    sources = markdown_sources(diagnose)
    for name in [*HOSTILE, "[click me](http://evil.example).png"]:
        assert not any(name in source for source in sources), f"{name} reached Markdown raw"
        assert any(escape_markdown(name) in source for source in sources), name
    assert not [s for s in sources if unescaped_markup(s)], sources
    # The error line quotes the name as text too.
    errors = [e.value for e in diagnose.error]
    assert len(errors) == 1 and escape_markdown("[click me](http://evil.example).png") in errors[0]
    # Image captions are Markdown as well.
    captions = [img.caption for image in diagnose.get("image") for img in image.proto.imgs]
    assert not [c for c in captions if unescaped_markup(c)]


def dicom_with_fields(modality: str, view: str) -> bytes:
    pixels = np.random.default_rng(1).integers(0, 4095, (64, 80), np.uint16)
    return dicom_bytes(pixels, Modality=modality, ViewPosition=view)


def test_dicom_fields_are_shown_as_text(diagnose: AppTest) -> None:
    modality, view = "**DX**[x](http://e.x)", "![p](http://e.x/p.png)"
    diagnose.file_uploader[0].set_value(
        ("chest.dcm", dicom_with_fields(modality, view), "application/dicom")
    ).run()
    assert not diagnose.exception, diagnose.exception
    fields = diagnose.dataframe[0].value.set_index("Field")["Value"]  # cells shown as text
    assert fields["Modality"] == modality
    assert fields["View position"] == view
    assert not diagnose.get("table"), "st.table renders Markdown in its cells"
    assert not any(modality in s or view in s for s in markdown_sources(diagnose))


def test_only_the_first_files_of_a_huge_upload_are_analysed(diagnose: AppTest) -> None:
    from cxr_app import diagnose as app_diagnose

    limit = app_diagnose.MAX_FILES_PER_UPLOAD
    files = [(f"x{i:02d}.png", png_bytes(i), "image/png") for i in range(limit + 3)]
    diagnose.file_uploader[0].set_value(files).run()
    assert not diagnose.exception, diagnose.exception
    assert any(f"the first {limit} are analysed" in w.value for w in diagnose.warning)
    assert list(diagnose.dataframe[0].value["File"]) == [name for name, _, _ in files[:limit]]


def test_a_large_jpeg_is_decoded_reduced_and_close_to_a_full_decode_shrunk() -> None:
    rows, cols = np.mgrid[0:4000, 0:5000]
    pixels = (128 + 90 * np.sin(rows / 300) * np.cos(cols / 400)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").save(buffer, "JPEG", quality=92)
    reduced = read_image(buffer.getvalue(), max_side=1024)
    assert reduced.pixels.shape == (2000, 2500)  # 1/2: the largest scale keeping sides >= 1024
    assert (reduced.info["width"], reduced.info["height"]) == (5000, 4000)
    assert "decoded at 1/2 scale" in reduced.info["note"]
    full = read_image(buffer.getvalue()).pixels
    shrunk = cv2.resize(full, (2500, 2000), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - reduced.pixels).mean() < 2.0
    small = read_image(buffer.getvalue(), max_side=8000)
    assert small.pixels.shape == (4000, 5000) and "note" not in small.info


def test_escape_markdown_and_code_span_keep_text_literal() -> None:
    escaped = r"\*\*a\*\*\[b\]\(http" + JOINER + r"\://c\)"
    assert escape_markdown("**a**[b](http://c)") == escaped
    assert escape_markdown("see www.x.org") == "see www" + JOINER + r"\.x\.org"
    assert escape_markdown("line\nbreak") == "line break"
    assert code_span("a`b") == "``a`b``" and code_span("plain") == "`plain`"

"""The Diagnose page: instant heatmap controls, several uploads in tabs, text-only tables.

AppTest on the tiny untrained model of ``test_app_pages`` (its Grad-CAM map is flat zero and its
Grad-CAM++ map flat one, so the two overlays differ and an opacity change shows on the latter).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cxr_app import catalog, texts
from cxr_app import results as app_results
from cxr_app import serving as app_serving
from cxr_core.inference.predictor import METHODS, Predictor
from cxr_core.inference.serving import ModelPool, Served, WarmState, serve_model
from tests.app.test_app_pages import all_text, app_env, open_page, png_bytes, shown
from tests.conftest import synthetic_xray

__all__ = ["app_env"]  # a fixture used here, defined in test_app_pages

PAGE = "pages/diagnose.py"


@pytest.fixture
def model_calls(monkeypatch) -> list[str]:
    """Every Predictor call that runs the model, by method name, from now on."""
    calls: list[str] = []
    for name in ("predict", "explain", "explain_all", "explain_batch"):
        original = getattr(Predictor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Predictor, name, counted)
    return calls


def xray_png(seed: int) -> bytes:
    """A small generated chest-like image, different for each seed (so never cached before)."""
    return png_bytes(synthetic_xray(seed % 2, np.random.default_rng(1000 + seed), 96))


@pytest.fixture(scope="module")
def tiny_predictor(tiny_model_dir: Path) -> Predictor:
    return Predictor.from_path(tiny_model_dir / "tiny.keras")


def overlay_url(at) -> str:
    (image,) = [i for i in at.get("image") if any("overlay" in c for c in i.captions)]
    return image.value[0]


def test_opacity_change_blends_the_cached_maps_without_a_model_call(app_env, model_calls):
    at = open_page(PAGE)
    at.radio[0].set_value("Grad-CAM++").run()
    at.file_uploader[0].set_value(("opacity.png", xray_png(1), "image/png")).run()
    assert not at.exception, at.exception
    assert model_calls == ["explain_batch"]  # one pass for both maps, through the worker
    before = overlay_url(at)
    at.slider[0].set_value(0.9).run()
    assert not at.exception, at.exception
    assert model_calls == ["explain_batch"]
    assert overlay_url(at) != before  # the overlay was blended again at the new opacity


def test_method_switch_shows_the_other_cached_map_without_a_model_call(app_env, model_calls):
    at = open_page(PAGE)
    at.file_uploader[0].set_value(("method.png", xray_png(2), "image/png")).run()
    gradcam = overlay_url(at)
    at.radio[0].set_value("Grad-CAM++").run()
    assert not at.exception, at.exception
    plus_plus = overlay_url(at)
    at.radio[0].set_value("Grad-CAM").run()
    assert model_calls == ["explain_batch"]
    assert plus_plus != gradcam and overlay_url(at) == gradcam


def test_several_uploads_get_a_summary_table_then_one_tab_each(app_env):
    at = open_page(PAGE)
    names = ["first.png", "second.png", "a-very-long-file-name-from-a-pacs-export.png"]
    files = [(name, xray_png(10 + i), "image/png") for i, name in enumerate(names)]
    at.file_uploader[0].set_value(files).run()
    assert not at.exception, at.exception
    assert "Results for 3 files" in all_text(at)
    assert list(at.dataframe[0].value["File"]) == names
    labels = [shown(tab.label) for tab in at.tabs]
    # Cut in the middle: both ends stay, so long names from one export still differ.
    assert labels == ["1. first.png", "2. second.png", "3. a-very-long…s-export.png"]
    for tab, name in zip(at.tabs, names, strict=True):
        (heading,) = [m.value for m in tab.markdown if "model output" in m.value]
        assert heading.startswith(f"#### {texts.md(name)}: model output")
    downloads = [b.label for b in at.get("download_button")]
    assert downloads == [
        "Download results (CSV)", "Download all reports (ZIP)", *["Download report (PNG)"] * 3
    ]  # fmt: skip


def test_refused_and_unreadable_rows_show_text_not_none(app_env):
    at = open_page(PAGE)
    blank = png_bytes(np.full((120, 120), 90, np.uint8))
    files = [
        ("notes.png", b"this is not an image", "image/png"),
        ("blank.png", blank, "image/png"),
        ("good.png", xray_png(3), "image/png"),
    ]
    at.file_uploader[0].set_value(files).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert not table.isna().any().any() and "None" not in table.to_csv()
    rows = table.set_index("File")
    assert rows.loc["blank.png", "Model output"] == "no verdict"
    assert rows.loc["blank.png", "Probability of pneumonia"] == "-"
    assert rows.loc["blank.png", "Input check"].startswith("refused")
    assert rows.loc["notes.png", "Probability of pneumonia"] == "-"
    assert rows.loc["good.png", "Probability of pneumonia"] == "0.500"
    (error,) = at.error  # the unreadable file's whole message, above the table
    assert "notes.png" in shown(error.value) and "not an image" in shown(error.value)
    refused_tab = at.tabs[0]
    assert shown(refused_tab.label) == "1. blank.png"
    assert [m.value for m in refused_tab.markdown if "model output" in m.value] == []
    assert len(refused_tab.get("image")) == 1  # the X-ray only: no overlay, no legend


def test_technical_fields_have_human_names_and_no_empty_cell():
    table = app_results.technical_fields(
        {"photometric_interpretation": "MONOCHROME1", "colour": 0.01234, "view_position": None}
    )
    assert list(table.columns) == ["Field", "Value"]
    assert list(table["Field"]) == [
        "Photometric interpretation",
        "Colour (mean chroma, 0 = grey)",
        "View position",
    ]
    assert list(table["Value"]) == ["MONOCHROME1", "0.012", "-"]


def test_both_maps_come_from_one_pass_and_match_single_method_calls(tiny_model_dir: Path):
    predictor = Predictor.from_path(tiny_model_dir / "tiny.keras")  # its own: steps wrapped
    pixels = synthetic_xray(1, np.random.default_rng(5), 80)
    passes = []
    step = predictor._explain_step
    predictor._explain_step = lambda batch: passes.append(1) or step(batch)
    both = predictor.explain_all(pixels)
    assert len(passes) == 1 and set(both.heatmaps) == set(METHODS)
    for method in METHODS:
        np.testing.assert_allclose(both.heatmaps[method], predictor.explain(pixels, method).heatmap)
    assert both.heatmap is both.heatmaps["gradcam"]


def test_view_change_seconds_reports_the_three_figures(tiny_predictor: Predictor):
    figures = app_results.view_change_seconds(tiny_predictor, xray_png(4), "x.png", repeats=3)
    assert set(figures) == {"analyse_s", "opacity_s", "method_s"}
    assert all(value > 0 for value in figures.values())


@pytest.fixture
def slow_pool(app_env, monkeypatch) -> tuple[ModelPool, threading.Event, list[str]]:
    """The warm-up on, and a fresh model pool whose loads wait for the returned event."""
    release, loads = threading.Event(), []

    def loader(path: str) -> Served:
        loads.append(path)
        release.wait(60)
        return serve_model(path)

    pool = ModelPool(loader)
    monkeypatch.setenv("CXR_WARM_UP", "1")
    monkeypatch.setattr(app_serving, "_POOL", [pool])
    monkeypatch.setattr(app_serving, "FLUSH_S", 0.0)  # the load starts once the page is drawn
    yield pool, release, loads
    release.set()


def test_home_starts_loading_the_default_model_in_the_background(slow_pool, tiny_model_dir):
    pool, release, loads = slow_pool
    at = open_page("pages/home.py")  # renders while the model is still loading
    assert not at.exception, at.exception
    deadline = time.monotonic() + 30  # the load starts on its own thread after the page
    while not loads and time.monotonic() < deadline:
        time.sleep(0.02)
    assert loads == [str(tiny_model_dir / "tiny.keras")]
    (entry,) = catalog.discover_models()
    assert pool.state(entry.path, entry.mtime) is WarmState.LOADING
    release.set()
    pool.get(entry.path, entry.mtime, timeout=60)
    assert pool.state(entry.path, entry.mtime) is WarmState.READY


def test_deep_link_to_diagnose_shows_loading_state_with_the_uploader(slow_pool):
    pool, release, _ = slow_pool
    page = str(Path(__file__).resolve().parents[2] / PAGE)
    at = AppTest.from_file(page, default_timeout=60).run()  # /diagnose as the first request
    assert not at.exception, at.exception
    assert "Loading the model" in all_text(at)
    assert len(at.file_uploader) == 1  # files can be chosen meanwhile
    release.set()
    (entry,) = catalog.discover_models()
    pool.get(entry.path, entry.mtime, timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert "Loading the model" not in all_text(at)
    assert "Upload one or more frontal chest X-rays" in all_text(at)
    at.file_uploader[0].set_value(("ready.png", xray_png(9), "image/png")).run()
    assert not at.exception, at.exception
    assert "model output" in all_text(at)

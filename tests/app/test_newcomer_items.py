"""Issue 19, items 6-9: what a newcomer notices (tables, reloads, watcher, icon, theme, alt
text, exports), each checked where the user meets it."""

from __future__ import annotations

import io
import json
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cxr_app import charts as app_charts
from cxr_app import gallery as app_gallery
from cxr_app import navigation as app_nav
from cxr_app import train_monitor
from cxr_core.data import tables as data
from cxr_core.runs import jobs
from tests.app.test_app_pages import APP, app_env, open_page, png_bytes
from tests.app_helpers import fake_run
from tests.conftest import synthetic_xray

__all__ = ["app_env"]  # a fixture used here, defined in test_app_pages

ROOT = Path(__file__).resolve().parents[2]


def test_config_polls_the_sources_offers_both_themes_and_a_theme_switch() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "poll"  # no recursive inotify over .venv
    assert ".venv" in config["server"]["folderWatchBlacklist"]
    assert "base" not in config["theme"]  # the browser's dark-mode preference decides
    assert {"light", "dark"} <= set(config["theme"])
    assert config["client"]["toolbarMode"] != "minimal"  # keeps the menu's theme setting


def test_the_page_icon_is_a_local_file() -> None:
    assert app_nav.ICON.is_file() and Image.open(app_nav.ICON).size == (64, 64)
    assert (
        ":material/"
        not in (ROOT / "cxr_app" / "navigation.py").read_text().split("set_page_config")[1][:200]
    )


def test_past_runs_table_has_no_none_and_says_what_the_monitor_says(tmp_path, tiny_dataset):
    fake_run(tmp_path, "cancelled", tiny_dataset, state="cancelled",
             started_at="2026-01-01T10:00:00+00:00")  # fmt: skip
    fake_run(tmp_path, "odd", tiny_dataset)  # no status fields at all
    table = train_monitor.runs_table(jobs.list_runs(tmp_path))
    assert not table.isna().any().any() and "None" not in table.to_string()
    assert "nan" not in table.to_string()
    row = table.set_index("run").loc["cancelled"]
    assert row["state"] == "cancelled" and row["val AUC"] == "-"
    assert row["started"] == "2026-01-01 10:00"


def test_a_resumed_run_keeps_its_first_start_time(tmp_path, tiny_dataset, monkeypatch) -> None:
    paths = fake_run(tmp_path, "again", tiny_dataset, state="cancelled",
                     started_at="2026-01-01T10:00:00+00:00")  # fmt: skip
    monkeypatch.setattr(jobs.subprocess, "Popen", _FakeProcess)
    jobs.resume_run(paths.root)
    assert json.loads(paths.status.read_text())["started_at"] == "2026-01-01T10:00:00+00:00"


class _FakeProcess:
    pid = 999_999_999

    def __init__(self, *args, **kwargs) -> None:
        pass


def test_dataset_val_bars_get_a_log_axis_beside_thousands() -> None:
    counts = pd.DataFrame({"NORMAL": [1341, 8], "PNEUMONIA": [3875, 8]}, index=["train", "val"])
    assert app_charts.counts_figure(counts).layout.yaxis.type == "log"
    even = pd.DataFrame({"NORMAL": [12, 4], "PNEUMONIA": [12, 4]}, index=["train", "val"])
    assert app_charts.counts_figure(even).layout.yaxis.type == "linear"


def test_the_dataset_folder_is_shared_by_the_pages_and_kept_in_the_url(app_env, tiny_dataset):
    at = open_page("pages/dataset.py")
    other = str(tiny_dataset / ".." / tiny_dataset.name)  # the same data, typed differently
    at.text_input[0].set_value(other).run()
    assert at.query_params["data"] == other
    at.switch_page("pages/train.py").run()
    assert at.session_state["t_data_root"] == other
    reloaded = AppTest.from_file(APP, default_timeout=120)  # a reload: a new session, same URL
    reloaded.query_params["data"] = other
    reloaded.run().switch_page("pages/evaluate.py")
    reloaded.query_params["data"] = other
    reloaded.run()
    assert reloaded.session_state["eval_root"] == other


def test_train_settings_come_back_from_the_url_and_launch_is_first(app_env) -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run().switch_page("pages/train.py")
    at.query_params.update(
        {"t_image_size": "96", "t_head_epochs": "3", "t_class_weighting": "false"}
    )
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["t_image_size"] == 96 and at.session_state["t_head_epochs"] == 3
    assert at.session_state["t_class_weighting"] is False
    assert at.sidebar.button[0].label == "Launch training"
    at.sidebar.number_input(key="t_head_epochs").set_value(2).run()
    assert at.query_params["t_head_epochs"] == "2"


def test_gallery_orders_by_confidence_and_the_csv_lists_every_image(tiny_dataset) -> None:
    rows = np.arange(4)
    scores = np.array([0.9, 0.52, 0.05, 0.4], np.float32)
    assert app_gallery.gallery_order(rows, scores, 0.5, "confident").tolist() == [2, 0, 3, 1]
    assert app_gallery.gallery_order(rows, scores, 0.5, "uncertain").tolist()[:2] == [1, 3]
    table = data.scan(tiny_dataset).head(4)
    csv = pd.read_csv(io.BytesIO(app_gallery.per_image_csv(table, scores, 0.5, "tiny")))
    assert list(csv.columns) == [
        "file", "probability", "label", "decision", "correct", "threshold", "model"
    ]  # fmt: skip
    assert len(csv) == 4 and str(tiny_dataset) not in csv.to_string()


def test_diagnose_batch_exports_and_alt_text(app_env) -> None:
    from cxr_app import loaders
    from cxr_app import results as app_results

    at = open_page("pages/diagnose.py")
    files = [(f"scan{i}.png", png_bytes(synthetic_xray(i % 2, np.random.default_rng(i), 96)),
              "image/png") for i in range(3)]  # fmt: skip
    at.file_uploader[0].set_value(files).run()
    assert not at.exception, at.exception
    labels = [b.label for b in at.get("download_button")]
    assert "Download all reports (ZIP)" in labels and "Download results (CSV)" in labels
    images = at.get("image")
    assert images and all(alt for i in images for alt in i.proto.imgs[0].alt.split("\x00"))
    results = [(name, loaders.analyse_upload(
        _entry(), content, name)) for name, content, _ in files]  # fmt: skip
    archive = zipfile.ZipFile(io.BytesIO(app_results.reports_zip(results, "Grad-CAM", 0.6, "m")))
    assert len(archive.namelist()) == 3 and all(n.endswith(".png") for n in archive.namelist())
    uploads = [_Upload(name) for name, _, _ in files]
    rows = [app_results.result_row(name, result) for name, result in results]
    csv = pd.read_csv(io.StringIO(app_results.results_csv(uploads, rows, dict(results), "m")))
    assert {"Model", "Analysed at (UTC)", "Input-check distance"} <= set(csv.columns)
    assert (csv["Model"] == "m").all()


class _Upload:
    def __init__(self, name: str) -> None:
        self.name = name


def _entry():
    from cxr_app import catalog

    entries = [e for e in catalog.discover_models() if e.problem is None]
    return entries[0]


@pytest.mark.parametrize("page", ["pages/evaluate.py"])
def test_evaluate_offers_the_per_image_csv(app_env, page) -> None:
    at = open_page(page)
    at.sidebar.text_input[0]  # the dataset folder is there
    assert "Download every image's prediction (CSV)" in [b.label for b in at.get("download_button")]

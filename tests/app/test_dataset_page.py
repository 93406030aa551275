"""The Dataset page as a reader sees it: human table headers, no empty cells, and the guide to
getting the data when there is none."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
#: Column names of the cxr_core tables that must never reach the page.
MACHINE_NAMES = {
    "split", "label", "sampled", "median_width", "median_height", "min_side", "max_side",
    "modes", "formats", "files", "splits", "labels", "across_splits", "conflicting_labels",
    "names", "patient_id", "images", "example", "total",
}  # fmt: skip


@pytest.fixture
def leaky_dataset(tmp_path, tiny_dataset) -> Path:
    """The tiny dataset plus one train image copied into val: a duplicate across splits and a
    patient (IM-0101) in two splits, so that every audit table is shown."""
    root = tmp_path / "leaky"
    shutil.copytree(tiny_dataset, root)
    shutil.copy(root / "train/NORMAL/IM-0101-0001.jpeg", root / "val/NORMAL/IM-0101-0001.jpeg")
    return root


def open_dataset_page(monkeypatch, tmp_path, data_root: str) -> AppTest:
    monkeypatch.setenv("CXR_MODELS_DIR", str(tmp_path / "no_models"))
    monkeypatch.setenv("CXR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CXR_DATA", data_root)
    monkeypatch.setenv("CXR_RAISE_ERRORS", "1")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/dataset.py").run()
    assert not at.exception, at.exception
    return at


def headers(frame: pd.DataFrame) -> list[str]:
    return [str(name) for name in [*frame.columns, frame.index.name] if name is not None]


def test_dataset_tables_have_human_headers_and_no_empty_cells(monkeypatch, tmp_path, leaky_dataset):
    at = open_dataset_page(monkeypatch, tmp_path, str(leaky_dataset))
    tables = [frame.value for frame in at.dataframe]
    assert len(tables) == 4  # counts, storage by class, identical files, patients across splits
    for frame in tables:
        assert not set(headers(frame)) & MACHINE_NAMES, headers(frame)
        assert not any("_" in name for name in headers(frame)), headers(frame)
        assert not frame.isna().any().any(), frame
        assert not frame.astype(str).isin(["None", "nan", "NaN", "<NA>"]).any().any(), frame
    counts, storage, copies, patients = tables
    assert list(counts.columns) == ["NORMAL", "PNEUMONIA", "Total"]
    assert counts.index.name == "Split" and counts.loc["Total", "Total"] == 33
    assert {"Median width (px)", "Colour modes", "File formats"} <= set(storage.columns)
    assert copies.iloc[0]["Spans splits"] == "yes" and copies.iloc[0]["Spans classes"] == "no"
    assert patients.iloc[0]["Patient"] == "IM-0101" and patients.iloc[0]["Splits"] == "train, val"


def test_display_table_writes_a_dash_for_missing_values():
    from cxr_app import display

    frame = pd.DataFrame({"val_auc": [0.91, None], "state": ["finished", None]})
    shown = display.display_table(frame)
    assert list(shown.columns) == ["Val auc", "State"]
    assert shown.to_dict("list") == {"Val auc": ["0.91", "-"], "State": ["finished", "-"]}


def test_without_a_dataset_the_page_shows_the_guide(monkeypatch, tmp_path):
    from cxr_app import environment

    monkeypatch.setattr(environment, "default_data_root", lambda: "")
    at = open_dataset_page(monkeypatch, tmp_path, "")
    text = re.sub(r"\\(.)", r"\1", "\n".join(m.value for m in at.markdown))
    assert [i.value for i in at.info] == [
        "No dataset found: type the folder of a chest X-ray dataset above."
    ]
    assert "kaggle datasets download -d paultimothymooney/chest-xray-pneumonia" in text
    assert "data/chest_xray/train/NORMAL/*.jpeg" in text
    assert not at.error and not at.dataframe

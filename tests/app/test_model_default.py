"""'Use this model' beside the current default: comparison, confirmation when worse, who may."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cxr_core.evaluation.model_compare import compare_models
from cxr_core.runs.app_settings import SETTINGS_FILE
from cxr_core.runs.files import RunPaths, RunState, update_status, write_json_atomic
from cxr_core.sidecar import ModelMetadata
from tests.app_helpers import fake_run, make_tiny_model, point_app_at

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
POOR = {"roc_auc": 0.617, "accuracy": 0.6, "sensitivity": 0.7, "specificity": 0.5, "n": 36}


def metadata(**metrics) -> ModelMetadata:
    return ModelMetadata.from_dict(
        {"backbone": "small_cnn", "image_size": 64, "threshold": 0.5, "metrics": metrics}
    )


def test_a_poorer_model_on_few_images_is_worse_with_reasons() -> None:
    good = metadata(roc_auc=0.99, accuracy=0.95, sensitivity=0.95, specificity=0.94, n=783)
    comparison = compare_models(metadata(**POOR), good)
    assert comparison.worse
    text = " ".join(comparison.concerns)
    assert "36 images only" in text and "roc auc is 0.617; the current default's 0.990" in text
    assert [row.candidate for row in comparison.rows][:2] == [36.0, 0.617]
    assert [row.current for row in comparison.rows][:2] == [783.0, 0.99]


def test_an_equal_or_better_model_is_not_worse() -> None:
    base = {"roc_auc": 0.95, "sensitivity": 0.9, "specificity": 0.9, "ece": 0.05, "n": 500}
    assert not compare_models(metadata(**base), metadata(**base)).worse
    better = {**base, "roc_auc": 0.97, "ece": 0.02}
    assert not compare_models(metadata(**better), metadata(**base)).worse
    assert compare_models(metadata(**{**base, "ece": 0.09}), metadata(**base)).worse


@pytest.fixture
def runs(tmp_path: Path, monkeypatch, tiny_model_dir: Path, tiny_dataset: Path) -> Path:
    runs = tmp_path / "runs"
    point_app_at(monkeypatch, tiny_model_dir, runs, tiny_dataset)
    return runs


def finished_run(runs: Path, data_root: Path, name: str, metrics: dict) -> RunPaths:
    paths = fake_run(runs, name, data_root)
    make_tiny_model(paths.root, data_root, name="model")
    sidecar = json.loads(paths.model.with_suffix(".json").read_text())
    write_json_atomic(paths.model.with_suffix(".json"), {**sidecar, "metrics": metrics})
    update_status(paths, state=RunState.FINISHED, phase="head", summary=metrics)
    return paths


def open_train() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    return at


def comparison_table(at: AppTest):
    return next(d.value for d in at.dataframe if "Current default" in d.value.columns)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_a_worse_model_needs_confirmation_before_it_becomes_the_default(runs, tiny_dataset):
    paths = finished_run(runs, tiny_dataset, "poor", POOR)
    at = open_train()
    assert not at.exception, at.exception
    table = comparison_table(at)
    assert list(table.columns) == ["Validation figure", "This run", "Current default"]
    assert table.iloc[1].tolist() == ["ROC AUC", "0.617", "0.910"]
    button(at, "Use this model").click().run()
    assert not (runs / SETTINGS_FILE).exists(), "a worse model became the default unasked"
    warning = at.warning[-1].value
    assert "looks worse than the current default" in warning and "36 images only" in warning
    button(at, "Keep the current default").click().run()
    assert not (runs / SETTINGS_FILE).exists()
    button(at, "Use this model").click().run()
    button(at, "Make it the default anyway").click().run()
    saved = json.loads((runs / SETTINGS_FILE).read_text())
    assert saved == {"default_model": str(paths.model)}


def test_a_visitor_cannot_change_the_default(runs, tiny_dataset, monkeypatch) -> None:
    monkeypatch.setenv("CXR_ADMIN_PASSWORD", "secret")
    finished_run(runs, tiny_dataset, "poor", POOR)
    at = open_train()
    with pytest.raises(StopIteration):
        comparison_table(at)
    button(at, "Use this model").click().run()
    assert not (runs / SETTINGS_FILE).exists()
    assert [t.value for t in at.toast] == ["Model **poor** is in use for this session."]


def test_the_sidebar_picker_does_not_change_everyones_default(runs, tiny_dataset) -> None:
    paths = finished_run(runs, tiny_dataset, "other", POOR)
    at = AppTest.from_file(APP, default_timeout=120).run()  # Home has the picker
    at.sidebar.selectbox(key="model_picker").select(str(paths.model)).run()
    assert at.session_state["active_model"] == str(paths.model)
    assert not (runs / SETTINGS_FILE).exists()

"""What a visitor of a shared deployment sees: no server paths, no made-up metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cxr_core.config import ModelConfig, RunConfig
from cxr_core.runs.files import RunPaths, RunState, update_status, write_json_atomic
from cxr_core.sidecar import Metrics
from tests.app_helpers import point_app_at

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shared(monkeypatch, tmp_path, tiny_model_dir, tiny_dataset) -> Path:
    point_app_at(monkeypatch, tiny_model_dir, tmp_path / "runs", tiny_dataset)
    monkeypatch.setenv("CXR_ADMIN_PASSWORD", "a long passphrase")
    return tmp_path / "runs"


def all_text(at: AppTest) -> str:
    kinds = ("markdown", "text", "code", "caption", "info", "warning", "error", "success")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def test_visitors_see_no_server_path_on_home_or_a_cancelled_run(shared, tiny_dataset):
    paths = RunPaths(shared / "stopped")
    paths.root.mkdir(parents=True)
    config = RunConfig(str(tiny_dataset), ModelConfig("small_cnn", "none", image_size=64))
    write_json_atomic(paths.config, config.to_dict())
    update_status(paths, state=RunState.CANCELLED, started_at="2026-01-01T10:00:00+00:00")
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert str(tiny_dataset) not in all_text(at)
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    text = all_text(at)
    assert "The run was cancelled." in text
    assert str(paths.root) not in text and "--resume" not in text


def test_a_finished_run_without_accuracy_does_not_show_zero():
    from cxr_app.train_monitor import finished_line

    assert (
        finished_line(Metrics({"roc_auc": 0.91}), 0.42)
        == "validation AUC 0.910 at threshold 0.420."
    )
    both = finished_line(Metrics({"roc_auc": 0.91, "accuracy": 0.85}), 0.5)
    assert both == "validation AUC 0.910, accuracy 0.850 at threshold 0.500."
    assert finished_line(Metrics({}), None) == "no validation metrics recorded."


def test_visitors_pick_fixed_sample_sizes_on_evaluate(shared):
    from cxr_core.runs.policy import VISITOR_SAMPLE_SIZES

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception, at.exception
    assert not at.sidebar.number_input  # no free size
    sizes = next(s for s in at.sidebar.selectbox if s.label == "Sample size (stratified)")
    assert tuple(sizes.options) == tuple(str(n) for n in VISITOR_SAMPLE_SIZES)

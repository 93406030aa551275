"""Fault injection into the files on disk: one wrongly shaped model sidecar or run file makes
that one model or run unusable (with the reason), never a page or the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cxr_core.cli import main
from cxr_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from cxr_core.errors import ModelLoadError, RunFileError
from cxr_core.runs import jobs
from cxr_core.runs.files import (
    RunPaths,
    RunState,
    append_history,
    read_history,
    read_status,
    update_status,
    write_json_atomic,
)
from cxr_core.sidecar import check_model_file, sidecar_path
from tests.app_helpers import make_tiny_model

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path) -> Path:
    """An untrained 64 px small_cnn with a complete sidecar."""
    return make_tiny_model(tmp_path_factory.mktemp("good"), tiny_dataset)


def _sidecar(good: Path) -> dict:
    return json.loads(sidecar_path(good).read_text())


# (case, how to break a copy of the good model's files, words the reason must contain)
SIDECAR_FAULTS = [
    ("null", lambda meta: None, "must hold a JSON object"),
    ("number", lambda meta: 5, "must hold a JSON object"),
    ("list", lambda meta: [meta], "must hold a JSON object"),
    ("metrics as a list", lambda meta: {**meta, "metrics": [0.9]}, "metrics must be"),
    ("threshold text", lambda meta: {**meta, "threshold": "abc"}, "threshold must be"),
    ("threshold 5", lambda meta: {**meta, "threshold": 5}, "threshold must be"),
    ("no image size", lambda meta: {k: v for k, v in meta.items() if k != "image_size"}, "lacks"),
    ("auc text", lambda meta: {**meta, "metrics": {"roc_auc": "high"}}, "roc_auc must be"),
    ("size mismatch", lambda meta: {**meta, "image_size": 128}, "takes 64 px"),
    ("stress shape", lambda meta: {**meta, "stress": {"clean": [1]}}, "clean must be"),
]


def broken_copy(good: Path, folder: Path, name: str, fault) -> Path:
    """Copy the good model to ``folder/name.keras`` with its sidecar replaced by ``fault``."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.keras"
    shutil.copy(good, target)
    sidecar_path(target).write_text(json.dumps(fault(_sidecar(good))))
    return target


def truncated_copy(good: Path, folder: Path, name: str = "truncated") -> Path:
    """Copy the good model with the .keras file cut to half its length."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.keras"
    target.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    shutil.copy(sidecar_path(good), sidecar_path(target))
    return target


@pytest.mark.parametrize(
    ("case", "fault", "reason"), SIDECAR_FAULTS, ids=[f[0] for f in SIDECAR_FAULTS]
)
def test_a_malformed_sidecar_is_a_model_load_error_naming_the_key(
    good_model: Path, tmp_path: Path, case: str, fault, reason: str
) -> None:
    bad = broken_copy(good_model, tmp_path, "bad", fault)
    with pytest.raises(ModelLoadError, match=reason):
        check_model_file(bad)


def test_a_truncated_model_file_says_so_not_file_not_found(good_model, tmp_path) -> None:
    bad = truncated_copy(good_model, tmp_path)
    with pytest.raises(ModelLoadError, match="truncated or damaged"):
        check_model_file(bad)
    from cxr_core.model.build import load_model

    with pytest.raises(ModelLoadError, match="truncated or damaged"):
        load_model(bad)


@pytest.mark.parametrize("case", ["null", "threshold text", "size mismatch", "truncated"])
def test_predict_with_a_broken_model_exits_2_with_one_error_line(
    good_model: Path, tiny_dataset: Path, tmp_path: Path, capsys, case: str
) -> None:
    if case == "truncated":
        bad = truncated_copy(good_model, tmp_path)
    else:
        fault = next(f for name, f, _ in SIDECAR_FAULTS if name == case)
        bad = broken_copy(good_model, tmp_path, "bad", fault)
    image = next((tiny_dataset / "val" / "NORMAL").glob("*.jpeg"))
    assert main(["predict", "--model", str(bad), str(image)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err


# ---------------------------------------------------------------------------------------------
# Run folders


def make_run(runs: Path, name: str, data_root: Path, state: str = "finished") -> RunPaths:
    """A run folder as a finished (or other) run leaves it, without training."""
    paths = RunPaths(runs / name)
    paths.root.mkdir(parents=True)
    config = RunConfig(
        str(data_root),
        ModelConfig("small_cnn", "none", image_size=64),
        DataConfig(batch_size=8),
        TrainConfig(head_epochs=1, finetune_epochs=0),
    )
    write_json_atomic(paths.config, config.to_dict())
    update_status(
        paths,
        state=RunState(state),
        started_at="2026-01-01T10:00:00+00:00",
        summary={"roc_auc": 0.9, "accuracy": 0.8, "threshold": 0.5},
        images_per_second=12.5,
    )
    paths.history.write_text(json.dumps({"epoch": 1, "phase": "scratch", "loss": 0.7}) + "\n")
    return paths


RUN_FAULTS = [
    (
        "history not UTF-8",
        lambda p: p.history.write_bytes(b'{"epoch": 1, "loss": 0.5}\n\xff\xfe\n'),
    ),
    ("numeric started_at", lambda p: update_status(p, started_at=1767261600)),
    ("summary a list", lambda p: update_status(p, summary=[0.9])),
    ("summary a string", lambda p: update_status(p, summary="great")),
    ("config model abc", lambda p: p.config.write_text('{"model": "abc"}')),
    ("config a list", lambda p: p.config.write_text("[1, 2]")),
    ("status a list", lambda p: p.status.write_text("[]")),
    ("unknown state", lambda p: p.status.write_text('{"state": "exploded"}')),
    ("history epoch text", lambda p: p.history.write_text('{"epoch": "one"}\n{"epoch": 2}\n')),
]


@pytest.mark.parametrize(("case", "fault"), RUN_FAULTS, ids=[f[0] for f in RUN_FAULTS])
def test_a_malformed_run_file_reads_as_unreadable_and_others_still_list(
    tiny_dataset: Path, tmp_path: Path, case: str, fault
) -> None:
    make_run(tmp_path, "good", tiny_dataset)
    fault(make_run(tmp_path, "bad", tiny_dataset))
    runs = {run.name: run for run in jobs.list_runs(tmp_path)}
    assert runs["good"].state == "finished" and runs["good"].status.summary.threshold == 0.5
    assert runs["bad"].state == "unreadable" and runs["bad"].problem
    assert jobs.active_run(tmp_path) is None


def test_readers_raise_run_file_errors_and_skip_torn_lines(tmp_path) -> None:
    paths = RunPaths(tmp_path)
    paths.history.write_text('{"epoch": 1, "loss": 0.5}\n{"epoch": 2, "lo')
    assert [row.epoch for row in read_history(paths)] == [1]
    append_history(paths, {"epoch": 2, "loss": 0.4})  # after a process was killed mid-line
    assert [(row.epoch, row.value("loss")) for row in read_history(paths)] == [(1, 0.5), (2, 0.4)]
    paths.history.write_text('{"epoch": 1, "loss": "low"}\n')
    with pytest.raises(RunFileError, match="loss must be a number"):
        read_history(paths)
    paths.status.write_text('{"state": "running", "epoch": "3"}')
    with pytest.raises(RunFileError, match="epoch must be an integer"):
        read_status(paths)


# ---------------------------------------------------------------------------------------------
# The pages


@pytest.fixture
def broken_env(monkeypatch, tmp_path, good_model, tiny_dataset) -> dict[str, Path]:
    """A models folder with the good model and three broken ones; runs with bad files."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(good_model, models / "good.keras")
    shutil.copy(sidecar_path(good_model), sidecar_path(models / "good.keras"))
    bad = {
        "a_null": broken_copy(good_model, models, "a_null", lambda meta: None),
        "b_text": broken_copy(good_model, models, "b_text", lambda m: {**m, "threshold": "abc"}),
        "c_size": broken_copy(good_model, models, "c_size", lambda m: {**m, "image_size": 128}),
        "d_cut": truncated_copy(good_model, models, "d_cut"),
    }
    runs = tmp_path / "runs"
    for name, fault in RUN_FAULTS[:5]:
        fault(make_run(runs, name.replace(" ", "-"), tiny_dataset))
    finished = make_run(runs, "null-sidecar", tiny_dataset)
    shutil.copy(good_model, finished.model)
    sidecar_path(finished.model).write_text("null")
    monkeypatch.setenv("CXR_MODELS_DIR", str(models))
    monkeypatch.setenv("CXR_RUNS_DIR", str(runs))
    monkeypatch.setenv("CXR_DATA", str(tiny_dataset))
    monkeypatch.setenv("CXR_RAISE_ERRORS", "1")
    monkeypatch.chdir(ROOT)
    return {"good": models / "good.keras", "runs": runs, **bad}


def page(path: str, active: Path | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    if active is not None:
        at.session_state["active_model"] = str(active)
    at.run()
    if path != "pages/home.py":
        at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    kinds = ("markdown", "caption", "error", "warning", "info", "success", "text")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


@pytest.mark.parametrize("path", ["pages/home.py", "pages/diagnose.py", "pages/evaluate.py"])
def test_pages_work_with_the_good_model_beside_broken_ones(broken_env, path) -> None:
    at = page(path)
    labels = at.sidebar.selectbox(key="model_picker").options
    assert sum("(unusable)" in label for label in labels) == 5  # 4 bundled + the run's null
    assert at.sidebar.selectbox(key="model_picker").value == str(broken_env["good"])
    assert "cannot be used" not in texts(at)


@pytest.mark.parametrize("bad", ["a_null", "b_text", "c_size", "d_cut"])
@pytest.mark.parametrize("path", ["pages/home.py", "pages/diagnose.py", "pages/evaluate.py"])
def test_a_chosen_broken_model_is_refused_with_its_reason(broken_env, path, bad) -> None:
    at = page(path, active=broken_env[bad])
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "cannot be used" in errors[0], errors


def test_train_page_lists_unreadable_runs_and_works(broken_env) -> None:
    at = page("pages/train.py")
    table = at.dataframe[0].value
    states = dict(zip(table["run"], table["state"], strict=True))
    assert states["null-sidecar"] == "finished"
    assert sorted(name for name, state in states.items() if state == "unreadable") == sorted(
        name.replace(" ", "-") for name, _ in RUN_FAULTS[:5]
    )
    at.selectbox(key="train_shown_run").set_value(str(broken_env["runs"] / "summary-a-list"))
    at.run()
    assert not at.exception, at.exception
    assert any("files cannot be read" in e.value for e in at.error)


def test_history_lines_are_appended_one_per_line(tmp_path) -> None:
    paths = RunPaths(tmp_path)
    for epoch in (1, 2, 3):
        append_history(paths, {"epoch": epoch, "loss": 0.1 * epoch})
    assert paths.history.read_text().count("\n") == 3
    assert [row.epoch for row in read_history(paths)] == [1, 2, 3]

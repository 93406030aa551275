"""The Train page: monitor texts from hand-written status files, Resume, the saved default model,
the dataset guide and GPU-aware defaults."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cxr_app import loaders
from cxr_core.distributed.devices import DeviceSummary, GpuEntry
from cxr_core.runs import jobs
from cxr_core.runs.app_settings import SETTINGS_FILE
from cxr_core.runs.files import RunPaths
from cxr_core.runs.guard import lock_run, unlock_run
from tests import app_helpers
from tests.app_helpers import make_tiny_model, point_app_at

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
GPU = DeviceSummary((GpuEntry("NVIDIA H200", 139.8),))


@pytest.fixture
def runs(monkeypatch, tmp_path, tiny_model_dir, tiny_dataset) -> Path:
    """The open app on the tiny model and dataset, on CPU; returns the (empty) runs folder."""
    point_app_at(monkeypatch, tiny_model_dir, tmp_path / "runs", tiny_dataset)
    monkeypatch.setattr(loaders, "device_summary", lambda: DeviceSummary())
    return tmp_path / "runs"


def open_train(at: AppTest | None = None) -> AppTest:
    at = (at or AppTest.from_file(APP, default_timeout=120)).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "warning", "error", "success")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind)).replace("\\", "")


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def fake_run(runs: Path, name: str, data_root: Path, **status: object) -> RunPaths:
    """A run folder (``tests.app_helpers.fake_run``) that started on 2026-01-01 10:00 UTC."""
    return app_helpers.fake_run(
        runs, name, data_root, started_at="2026-01-01T10:00:00+00:00", **status
    )


def test_a_starting_run_says_what_it_does_not_epoch_1_of_1(runs, tiny_dataset) -> None:
    fake_run(runs, "new", tiny_dataset, state="starting", stage="loading TensorFlow")
    at = open_train()
    text = texts(at)
    assert "**new**: starting: loading TensorFlow" in text
    assert "epoch 1 of" not in text and "batch 0 of" not in text
    assert metric(at, "Time left (estimate)") == "measuring..."


@pytest.mark.parametrize(
    ("status", "headline"),
    [
        (
            {"stage": "reading the images", "state": "preparing"},
            "starting: reading the images",
        ),
        (  # head -> fine-tune: the head's last batch counter is not shown
            {"stage": "compiling the model", "phase": "finetune", "epoch": 3, "batch": 0},
            "phase 2 (fine-tuning): starting (compiling the model)",
        ),
        (
            {"stage": "training", "phase": "finetune", "epoch": 4, "batch": 7},
            "phase 2 (fine-tuning): epoch 4 of 5, batch 7 of 19",
        ),
        (
            {"stage": "finishing", "phase": "finishing", "message": "fitting the input check"},
            "finishing: fitting the input check",
        ),
    ],
)
def test_a_running_run_shows_its_stage_and_a_count_down(runs, tiny_dataset, status, headline):
    estimated = (datetime.now(UTC) - timedelta(seconds=30)).isoformat(timespec="seconds")
    fields = {"state": "running", "total_epochs": 5, "batches_per_epoch": 19, **status}
    paths = fake_run(runs, "live", tiny_dataset, eta_seconds=150, eta_at=estimated, **fields)
    lock_run(paths.root)  # the run's process, as far as readers can tell
    try:
        at = open_train()
    finally:
        unlock_run(paths.root)
    assert f"**live**: {headline}" in texts(at)
    assert "batch 19 of 19" not in texts(at)
    left = metric(at, "Time left (estimate)")  # 150 s estimated 30 s ago
    minutes, _, seconds, _ = left.split()  # e.g. "1 min 58 s"; 150 - 30 = 120 s, rounded
    assert 110 <= int(minutes) * 60 + int(seconds) <= 120


def test_a_finished_run_says_finished_and_use_this_model_persists(runs, tiny_dataset) -> None:
    summary = {"roc_auc": 0.9, "accuracy": 0.8, "threshold": 0.4}
    paths = fake_run(
        runs, "done", tiny_dataset, state="finished", phase="finetune", summary=summary
    )
    make_tiny_model(paths.root, tiny_dataset, name="model")
    at = open_train()
    assert "**done**: finished\n" in texts(at) + "\n" and "finished (" not in texts(at)
    next(b for b in at.button if b.label == "Use this model").click().run()
    assert [t.value for t in at.toast] == ["Model **done** is the default from now on."]
    saved = json.loads((runs / SETTINGS_FILE).read_text())
    assert saved == {"default_model": str(paths.model)}

    restarted = AppTest.from_file(APP, default_timeout=120).run()  # a new session, same files
    assert restarted.sidebar.selectbox(key="model_picker").value == str(paths.model)


@pytest.mark.parametrize("content", ["{not json", '{"default_model": "/gone/model.keras"}', "[]"])
def test_a_corrupt_or_stale_settings_file_falls_back_to_the_bundled_model(
    runs, tiny_model_dir, content
):
    runs.mkdir(parents=True)
    (runs / SETTINGS_FILE).write_text(content)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="model_picker").value == str(tiny_model_dir / "tiny.keras")


def test_a_visitors_choice_stays_in_their_session(runs, tiny_dataset, monkeypatch) -> None:
    monkeypatch.setenv("CXR_ADMIN_PASSWORD", "secret")
    paths = fake_run(runs, "done", tiny_dataset, state="finished", summary={"roc_auc": 0.9})
    make_tiny_model(paths.root, tiny_dataset, name="model")
    at = open_train()
    next(b for b in at.button if b.label == "Use this model").click().run()
    assert [t.value for t in at.toast] == ["Model **done** is in use for this session."]
    assert at.session_state["active_model"] == str(paths.model)
    assert not (runs / SETTINGS_FILE).exists()


def test_resume_relaunches_a_cancelled_run_in_its_own_folder(runs, tiny_dataset) -> None:
    paths = fake_run(runs, "stopped", tiny_dataset, state="cancelled", message="stopped")
    at = open_train()
    assert "**stopped**: cancelled" in texts(at)
    next(b for b in at.button if b.label == "Resume run").click().run()
    assert not at.exception, at.exception
    assert "Run stopped resumed in the background" in texts(at)
    run = jobs.read_run(paths.root)
    try:
        assert run.active and [p.name for p in runs.iterdir() if p.is_dir()] == ["stopped"]
        assert "starting: loading TensorFlow" in texts(at)
        command = Path(f"/proc/{run.status.pid}/cmdline").read_bytes().split(b"\0")
        assert command[-5:-1] == [b"train", b"--out", str(paths.root).encode(), b"--resume"]
    finally:
        jobs.cancel_run(paths.root)
        deadline = time.monotonic() + 30
        while jobs.read_run(paths.root).active and time.monotonic() < deadline:
            time.sleep(0.2)
    assert jobs.read_run(paths.root).state == "cancelled"


def test_without_a_dataset_the_page_shows_the_guide(runs, monkeypatch) -> None:
    monkeypatch.setenv("CXR_DATA", "")
    at = open_train()
    text = texts(at)
    assert "No dataset folder yet" in text and "kaggle datasets download" in text
    assert "data_root" not in text and not at.warning and not at.error


def test_a_missing_dataset_folder_shows_the_reason_and_the_guide(runs, monkeypatch) -> None:
    monkeypatch.setenv("CXR_DATA", "/nonexistent/chest_xray")
    at = open_train()
    assert "does not exist" in at.error[0].value and "kaggle datasets download" in texts(at)


def test_a_visible_gpu_sets_full_size_defaults_and_is_named(runs, monkeypatch) -> None:
    monkeypatch.setattr(loaders, "device_summary", lambda: GPU)
    at = open_train()
    assert "Training runs on 1 GPU: NVIDIA H200 (140 GB)" in texts(at.sidebar)
    assert (
        at.sidebar.select_slider(key="t_image_size").value,
        at.sidebar.select_slider(key="t_batch_size").value,
    ) == (224, 64)
    assert at.sidebar.number_input(key="t_limit_per_class").value == 0
    assert "5 epochs" not in texts(at) and "x 6 epochs" in texts(at)


def test_on_cpu_the_quick_defaults_stay(runs) -> None:
    at = open_train()
    assert "No GPU visible" in texts(at.sidebar)
    assert at.sidebar.select_slider(key="t_image_size").value == 128
    assert at.sidebar.number_input(key="t_limit_per_class").value == 300
    assert "x 2 epochs" in texts(at)


def test_the_widget_defaults_are_the_librarys_except_the_quick_run_settings() -> None:
    from cxr_app import train as app_train
    from cxr_core.training.run_settings import SETTING_NAMES, default_settings

    library = default_settings()
    for name in SETTING_NAMES:
        key = app_train.setting_key(name)
        if name in app_train.CPU_QUICK_RUN:
            assert app_train.TRAIN_DEFAULTS[key] == app_train.CPU_QUICK_RUN[name]
        elif name != "data_root":
            assert app_train.TRAIN_DEFAULTS[key] == library[name], key
    # The widgets' first values make the same RunConfig as the library's defaults would.
    values = {**app_train.TRAIN_DEFAULTS, app_train.setting_key("data_root"): "/tmp"}
    config = app_train.run_config_from(values)
    assert config.train.head_epochs == app_train.CPU_QUICK_RUN["head_epochs"]
    assert config.data.batch_size == library["batch_size"]


def test_every_settings_widget_is_keyed_by_its_setting_name(runs) -> None:
    from cxr_app import train as app_train
    from cxr_core.training.run_settings import SETTING_NAMES

    at = open_train()
    kinds = ("text_input", "selectbox", "radio", "select_slider", "number_input", "slider")
    keys = {w.key for kind in (*kinds, "checkbox") for w in getattr(at.sidebar, kind)}
    train_keys = {key for key in keys if key and key.startswith(app_train.KEY_PREFIX)}
    names = {key.removeprefix(app_train.KEY_PREFIX) for key in train_keys}
    assert names - set(SETTING_NAMES) == {"name"}  # the run's name is no setting
    assert len(names) >= 22  # every setting the page shows, dataset folder and weights included

"""The shared-server mode: an administrator password, allowed dataset folders, visitor limits,
and errors shown to visitors as an id, never a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cxr_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from cxr_core.errors import ConfigError
from cxr_core.runs import jobs
from cxr_core.runs.files import RunPaths, RunState, update_status, write_json_atomic
from cxr_core.runs.guard import lock_run, unlock_run
from cxr_core.runs.policy import NOT_ALLOWED, TrainingLimits
from tests.app_helpers import point_app_at

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
PASSWORD = "correct horse battery staple"


@pytest.fixture
def env(monkeypatch, tmp_path, tiny_model_dir, tiny_dataset) -> Path:
    """The app on the tiny model and dataset, shared with a password; returns the runs folder."""
    point_app_at(monkeypatch, tiny_model_dir, tmp_path / "runs", tiny_dataset)
    monkeypatch.setenv("CXR_ADMIN_PASSWORD", PASSWORD)
    return tmp_path / "runs"


def open_page(path: str, at: AppTest | None = None) -> AppTest:
    at = at if at is not None else AppTest.from_file(APP, default_timeout=120)
    at.run()
    if path != "pages/home.py":
        at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def sign_in(at: AppTest, password: str) -> AppTest:
    at.sidebar.text_input(key="cxr_admin_password").set_value(password)
    next(b for b in at.sidebar.button if b.label == "Sign in").click().run()
    assert not at.exception, at.exception
    return at


def launch_button(at: AppTest):
    return next(b for b in at.button if b.label == "Launch training")


def fake_run(runs: Path, name: str, data_root: Path, state: str) -> RunPaths:
    paths = RunPaths(runs / name)
    paths.root.mkdir(parents=True)
    config = RunConfig(str(data_root), ModelConfig("small_cnn", "none", 64))
    write_json_atomic(paths.config, config.to_dict())
    update_status(paths, state=RunState(state), started_at="2026-01-01T10:00:00+00:00", epoch=1)
    return paths


def test_visitors_cannot_launch_or_type_paths(env: Path, tiny_dataset: Path) -> None:
    at = open_page("pages/train.py")
    assert launch_button(at).disabled
    assert "Training is open to the administrator" in at.sidebar.info[0].value
    assert "t_data_root" not in [w.key for w in at.sidebar.text_input]  # a choice, not free text
    assert at.sidebar.selectbox(key="t_data_root").options == [str(tiny_dataset)]
    assert "file" not in at.sidebar.radio(key="t_weights").options
    dataset = open_page("pages/dataset.py")
    assert not dataset.main.text_input and dataset.selectbox(key="dataset_root").value
    assert "32 images" in "\n".join(m.value for m in dataset.markdown)


def test_a_wrong_password_is_refused_and_the_right_one_opens_training(env: Path) -> None:
    at = sign_in(open_page("pages/train.py"), "guess")
    assert "Wrong password." in [e.value for e in at.sidebar.error]
    assert launch_button(at).disabled
    sign_in(at, PASSWORD)
    assert not launch_button(at).disabled
    assert "t_data_root" in [w.key for w in at.sidebar.text_input]
    assert "file" in at.sidebar.radio(key="t_weights").options


def test_the_password_can_come_from_secrets(env: Path, monkeypatch) -> None:
    monkeypatch.delenv("CXR_ADMIN_PASSWORD")
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets["CXR_ADMIN_PASSWORD"] = PASSWORD
    at = open_page("pages/train.py", at)
    assert launch_button(at).disabled
    assert not launch_button(sign_in(at, PASSWORD)).disabled


def test_only_an_administrator_may_cancel_or_resume_others_runs(env, tiny_dataset) -> None:
    running = fake_run(env, "theirs", tiny_dataset, "running")
    fake_run(env, "stopped", tiny_dataset, "cancelled")
    lock_run(running.root)  # the run's process, as far as readers can tell
    try:
        at = open_page("pages/train.py")
        at.selectbox(key="train_shown_run").set_value(str(running.root)).run()
        assert "Cancel run" not in [b.label for b in at.button]
        at.selectbox(key="train_shown_run").set_value(str(env / "stopped")).run()
        assert "Resume run" not in [b.label for b in at.button]
        sign_in(at, PASSWORD)
        assert "Resume run" in [b.label for b in at.button]
        at.selectbox(key="train_shown_run").set_value(str(running.root)).run()
        assert "Cancel run" in [b.label for b in at.button]
    finally:
        unlock_run(running.root)


@pytest.mark.parametrize("path", ["/root/.ssh", "/proc/self", "..", "/no/such/folder"])
def test_data_roots_refuse_every_other_path_with_one_sentence(env, monkeypatch, path) -> None:
    monkeypatch.delenv("CXR_ADMIN_PASSWORD")  # even the open mode honours CXR_DATA_ROOTS
    monkeypatch.setenv("CXR_DATA_ROOTS", str(Path(env).parent / "allowed"))
    at = open_page("pages/dataset.py")
    at.text_input[0].set_value(path).run()
    assert not at.exception, at.exception
    assert at.error[0].value.replace("\\", "") == NOT_ALLOWED


def test_data_roots_let_their_own_folders_open(env, monkeypatch, tiny_dataset) -> None:
    monkeypatch.setenv("CXR_DATA_ROOTS", f"/nonexistent:{tiny_dataset}")
    at = open_page("pages/evaluate.py")
    assert at.sidebar.selectbox(key="eval_root").options == ["/nonexistent", str(tiny_dataset)]
    at.sidebar.selectbox(key="eval_root").set_value(str(tiny_dataset)).run()
    assert [m.label for m in at.metric][:2] == ["Sensitivity", "Specificity"]


def test_visitor_limits_refuse_a_run_that_would_block_the_server() -> None:
    limits = TrainingLimits.from_settings(
        {
            "CXR_VISITOR_MAX_IMAGE_SIZE": "128",
            "CXR_VISITOR_MAX_EPOCHS": "4",
            "CXR_VISITOR_MAX_IMAGES_PER_CLASS": "300",
            "CXR_VISITOR_BACKBONES": "efficientnet_lite0,small_cnn",
        }
    )
    huge = RunConfig(
        "/data",
        ModelConfig("vgg16", "imagenet", 320),
        DataConfig(),
        TrainConfig(head_epochs=200, finetune_epochs=200),
    )
    with pytest.raises(ConfigError, match="backbone must be one of"):
        limits.check(huge)
    small = RunConfig(
        "/data", ModelConfig("small_cnn", "none", 64), DataConfig(limit_per_class=300)
    )
    limits.check(RunConfig("/data", small.model, small.data, TrainConfig(1, 1)))
    for changed, words in (
        (ModelConfig("small_cnn", "none", 224), "image size must be at most 128"),
        (DataConfig(limit_per_class=None), "images per class must be at most 300"),
        (TrainConfig(3, 2), "epochs of both phases together must be at most 4"),
    ):
        parts = {"model": small.model, "data": small.data, "train": TrainConfig(1, 1)}
        parts[type(changed).__name__.removesuffix("Config").lower()] = changed
        with pytest.raises(ConfigError, match=words):
            limits.check(RunConfig("/data", **parts))
    with pytest.raises(ConfigError, match="positive integer"):
        TrainingLimits.from_settings({"CXR_VISITOR_MAX_EPOCHS": "lots"})


def test_visitors_train_within_limits_and_cancel_only_their_own_run(env, monkeypatch) -> None:
    monkeypatch.setenv("CXR_VISITOR_TRAINING", "1")
    at = open_page("pages/train.py")
    assert at.sidebar.selectbox(key="t_backbone").options == ["efficientnet_lite0", "small_cnn"]
    assert max(map(int, at.sidebar.select_slider(key="t_image_size").options)) == 128
    at.sidebar.text_input(key="t_name").set_value("mine")
    at.sidebar.selectbox(key="t_backbone").set_value("small_cnn").run()
    at.sidebar.select_slider(key="t_image_size").set_value(64)
    at.sidebar.number_input(key="t_head_epochs").set_value(4)
    at.sidebar.number_input(key="t_finetune_epochs").set_value(0)
    launch_button(at).click().run()
    assert not at.exception, at.exception
    assert "Run mine started in the background." in [s.value for s in at.success]
    deadline = time.monotonic() + 60
    while not jobs.read_run(env / "mine").active:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    at.run()
    next(b for b in at.button if b.label == "Cancel run").click().run()
    assert jobs.read_run(env / "mine").state in ("starting", "preparing", "running", "cancelled")
    deadline = time.monotonic() + 30
    while (run := jobs.read_run(env / "mine")).active:
        assert time.monotonic() < deadline, "the visitor's cancel did not stop the run"
        time.sleep(0.2)
    assert run.state == "cancelled"
    other = open_page("pages/train.py")  # another visitor's session
    other.selectbox(key="train_shown_run").set_value(str(env / "mine")).run()
    assert "Resume run" not in [b.label for b in other.button]


def test_a_page_error_shows_an_id_not_a_traceback(env, monkeypatch) -> None:
    import logging

    from cxr_app import loaders

    monkeypatch.delenv("CXR_RAISE_ERRORS")
    logged: list[str] = []
    log = logging.getLogger("cxr_app")
    monkeypatch.setattr(log, "exception", lambda message, *args: logged.append(message % args))

    def broken() -> dict:
        raise RuntimeError("secret detail /srv/app/internal.py")

    monkeypatch.setattr(loaders, "device_summary", broken)
    at = open_page("pages/home.py")
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "error id" in errors[0]
    assert "secret detail" not in "\n".join(e.value for e in at.error)
    assert not at.exception
    error_id = errors[0].split("error id ")[1][:8]
    assert logged and logged[0].startswith(f"error {error_id} on page")

"""The pages that need no model stay fast: Home, Dataset and the Train monitor never import
TensorFlow, and the model picker's labels are short enough for the sidebar.

The speed itself is measured by ``benchmarks/app_latency.py``, never timed here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cxr_core.config import ModelConfig, RunConfig
from cxr_core.runs.files import (
    RunPaths,
    RunState,
    append_history,
    update_status,
    write_json_atomic,
)
from cxr_core.runs.guard import lock_run, unlock_run
from tests.app_helpers import make_tiny_model

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")

# Run in a fresh interpreter: the test process has imported TensorFlow long ago.
VISIT_PAGES = """
import json, sys
from streamlit.testing.v1 import AppTest

at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
report = {}
for page in ("pages/home.py", "pages/dataset.py", "pages/train.py"):
    if page != "pages/home.py":
        at.switch_page(page).run()
    texts = [e.value for kind in ("markdown", "caption", "success", "info") for e in at.get(kind)]
    report[page] = {
        "tensorflow": sorted(m for m in ("tensorflow", "keras") if m in sys.modules),
        "errors": [str(e.value) for e in at.exception],
        "text": "\\n".join(str(t) for t in texts),
        "charts": len(at.get("plotly_chart")),
        "progress": len(at.get("progress")),
    }
print(json.dumps(report))
"""


def shown(markdown: str) -> str:
    """What a reader sees of escaped Markdown: the text without its escaping backslashes."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def write_run(runs: Path, name: str, data_root: Path, state: str) -> RunPaths:
    """A run folder as a training process leaves it: config, status and two epochs."""
    paths = RunPaths(runs / name)
    paths.root.mkdir(parents=True)
    config = RunConfig(str(data_root), ModelConfig("small_cnn", "none", image_size=64))
    write_json_atomic(paths.config, config.to_dict())
    for epoch in (1, 2):
        row = {"epoch": epoch, "phase": "scratch", "loss": 0.7 / epoch, "val_auc": 0.6 + epoch / 10}
        append_history(paths, row)
    summary = {"roc_auc": 0.8, "accuracy": 0.7, "threshold": 0.5}
    update_status(
        paths,
        state=RunState(state),
        phase="scratch",
        epoch=2,
        batch=1,
        batches_per_epoch=3,
        total_epochs=3,
        started_at="2026-01-01T10:00:00+00:00",
        summary=summary if state == "finished" else None,
    )
    return paths


def test_home_dataset_and_train_monitor_never_import_tensorflow(tmp_path, tiny_dataset):
    models, runs = tmp_path / "models", tmp_path / "runs"
    make_tiny_model(models, tiny_dataset)
    write_run(runs, "done-run", tiny_dataset, "finished")
    live = write_run(runs, "live-run", tiny_dataset, "running")
    lock_run(live.root)  # held by this process, as a training process holds its folder
    env = {
        **os.environ,
        "CXR_MODELS_DIR": str(models),
        "CXR_RUNS_DIR": str(runs),
        "CXR_DATA": str(tiny_dataset),
        "CXR_RAISE_ERRORS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", VISIT_PAGES, APP],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        unlock_run(live.root)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for page, seen in report.items():
        assert seen["errors"] == [], (page, seen["errors"])
        assert seen["tensorflow"] == [], f"{page} imported {seen['tensorflow']}"
    # The pages rendered their content, not an early stop.
    home, dataset = (shown(report[page]["text"]) for page in ("pages/home.py", "pages/dataset.py"))
    assert "tiny - bundled" in home and "ROC AUC: 0.910" in home
    assert "32 images" in dataset and "No patient has images in more than one split." in dataset
    train = report["pages/train.py"]
    assert "live-run" in shown(train["text"]) and train["progress"] == 1 and train["charts"] >= 1


@pytest.fixture
def bundled_env(monkeypatch, tmp_path, tiny_dataset) -> Path:
    """The bundled model, a run whose model is finished, and the tiny dataset."""
    runs = tmp_path / "runs"
    write_run(runs, "run-20261126-165210", tiny_dataset, "finished")
    make_tiny_model(runs / "run-20261126-165210", tiny_dataset, name="model")
    monkeypatch.delenv("CXR_MODELS_DIR", raising=False)  # assets/models
    monkeypatch.setenv("CXR_RUNS_DIR", str(runs))
    monkeypatch.setenv("CXR_DATA", str(tiny_dataset))
    monkeypatch.setenv("CXR_RAISE_ERRORS", "1")
    return runs


def test_model_labels_hold_the_full_name_and_fit_the_sidebar(bundled_env):
    from cxr_app import catalog

    entries = {entry.name: entry for entry in catalog.discover_models()}
    assert entries["cxr_lite0"].label == "cxr_lite0 - bundled"
    assert entries["run-20261126-165210"].label == "run-20261126-165210 - run"
    assert all(len(entry.label) <= 28 for entry in entries.values())
    assert entries["cxr_lite0"].details.startswith(
        "efficientnet_lite0 ensemble, 224 px, val AUC 0.9"
    )

    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    picker = at.sidebar.selectbox(key="model_picker")
    assert picker.options == ["cxr_lite0 - bundled", "run-20261126-165210 - run"]
    captions = [shown(c.value) for c in at.sidebar.caption]
    assert entries["cxr_lite0"].details in captions  # the details, under the picker


def test_driver_gpus_come_from_nvidia_smi_and_follow_cuda_visible_devices(monkeypatch):
    from cxr_core.distributed import devices

    listing = "0, GPU-aaaa-1, NVIDIA H200, 143771\n1, GPU-bbbb-2, NVIDIA A100, [N/A]\n"
    monkeypatch.setattr(
        devices.subprocess, "run", lambda args, **_: subprocess.CompletedProcess(args, 0, listing)
    )
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    found = devices.describe_driver_gpus()
    assert found.summary == "2 GPUs: NVIDIA A100, NVIDIA H200"
    assert found.gpus == (
        devices.GpuEntry("NVIDIA H200", 140.4),
        devices.GpuEntry("NVIDIA A100", None),
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbb")
    assert devices.describe_driver_gpus().summary == "1 GPU: NVIDIA A100"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert devices.describe_driver_gpus() == devices.DeviceSummary()


def test_driver_gpus_fall_back_to_the_kernel_driver_files(monkeypatch, tmp_path):
    from cxr_core.distributed import devices

    def no_nvidia_smi(*_, **__):
        raise FileNotFoundError("nvidia-smi")

    gpu = tmp_path / "0000:19:00.0"
    gpu.mkdir()
    (gpu / "information").write_text(
        "Model: \t\t NVIDIA H200\nGPU UUID: \t GPU-cccc-3\nDevice Minor: \t 0\n", encoding="utf-8"
    )
    monkeypatch.setattr(devices.subprocess, "run", no_nvidia_smi)
    monkeypatch.setattr(devices, "PROC_NVIDIA_GPUS", tmp_path)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert devices.describe_driver_gpus() == devices.DeviceSummary(
        (devices.GpuEntry("NVIDIA H200", None),)
    )
    monkeypatch.setattr(devices, "PROC_NVIDIA_GPUS", tmp_path / "absent")
    assert devices.describe_driver_gpus().summary == "CPU only"


def test_reruns_keep_the_keras_session_so_nothing_is_rebuilt(monkeypatch, tmp_path, tiny_dataset):
    # Streamlit clears the Keras session after every run once Keras is imported: a full garbage
    # collection and TensorFlow's kernel cache thrown away, seconds on each slider move.
    import keras

    cleared: list[int] = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *_, **__: cleared.append(1))
    make_tiny_model(tmp_path / "models", tiny_dataset)
    monkeypatch.setenv("CXR_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("CXR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CXR_DATA", str(tiny_dataset))
    monkeypatch.setenv("CXR_RAISE_ERRORS", "1")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/diagnose.py").run()
    image = next((tiny_dataset / "val" / "PNEUMONIA").glob("*.jpeg"))
    at.file_uploader[0].set_value((image.name, image.read_bytes(), "image/jpeg")).run()
    next(s for s in at.slider if "opacity" in s.label.lower()).set_value(0.7).run()
    assert not at.exception, at.exception
    assert "keras" in sys.modules and len(at.get("image")) >= 2  # a model ran, a heatmap shown
    assert cleared == []

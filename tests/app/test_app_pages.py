"""AppTest checks of every page of the Streamlit app, on a tiny model and a generated dataset."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cxr_core.config import ModelConfig, RunConfig
from cxr_core.runs import jobs
from cxr_core.runs.files import RunStatus
from tests.app_helpers import make_tiny_model, point_app_at
from tests.core.imaging.test_imaging import dicom_bytes

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
TIMEOUT = 120


@pytest.fixture
def app_env(monkeypatch, tmp_path, tiny_model_dir, tiny_dataset) -> Path:
    """Point the app at the tiny model, an empty runs folder and the tiny dataset."""
    runs = tmp_path / "runs"
    point_app_at(monkeypatch, tiny_model_dir, runs, tiny_dataset)
    return runs


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    if page != "pages/home.py":
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def shown(markdown: str) -> str:
    """What a reader sees of escaped Markdown: the text without its escaping backslashes."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")


def all_text(at: AppTest) -> str:
    """Every text element's Markdown source, escapes removed (see :func:`shown`)."""
    parts = [
        e.value
        for kind in ("markdown", "caption", "title", "subheader", "header")
        for e in getattr(at, kind)
    ]
    parts += [
        e.value for kind in ("info", "warning", "error", "success") for e in getattr(at, kind)
    ]
    return shown("\n".join(str(p) for p in parts))


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_home_shows_model_metrics_devices_and_disclaimer(app_env):
    text = all_text(open_page("pages/home.py"))
    assert "tiny - bundled" in text and "small_cnn, 64 px, val AUC 0.910" in text
    assert "ROC AUC: 0.910 (95% CI 0.850-0.960)" in text
    assert "Validation figures (**flattering**" in text
    assert "Accelerators: **" in text
    assert "Research demo - not a diagnostic device" in text


def test_home_says_how_to_get_a_model_when_there_is_none(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("CXR_MODELS_DIR", str(tmp_path / "empty"))
    text = all_text(open_page("pages/home.py"))
    assert "No model found - train one on the Train page or see the README" in text


def test_diagnose_shows_verdict_probability_threshold_and_heatmap(
    app_env, tiny_dataset, tiny_model_dir
):
    at = open_page("pages/diagnose.py")
    image = next((tiny_dataset / "val" / "PNEUMONIA").glob("*.jpeg"))
    at.file_uploader[0].set_value((image.name, image.read_bytes(), "image/jpeg")).run()
    assert not at.exception, at.exception
    text = all_text(at)
    assert f"{image.name}: model output" in text
    assert "Probability of pneumonia **" in text and "threshold **0.500**" in text
    assert "Research demo - not a diagnostic device" in text
    # The score-against-threshold scale, original, overlay and the overlay's numbered colour bar
    assert len(at.get("image")) == 4
    assert "Score " in " ".join(c for i in at.get("image") for c in i.captions)
    assert "not where the disease is" in text and "Low values are transparent" in text
    # The page explains a blank map exactly when the model's Grad-CAM map is blank.
    from cxr_core.explain.verdict import blank_map_note
    from cxr_core.imaging.scoring import decode_for_model
    from cxr_core.inference.predictor import Predictor

    model = next(tiny_model_dir.glob("*.keras"))
    heatmap = Predictor.from_path(model).explain_all(decode_for_model(image).pixels).heatmap
    assert ("The heatmap is blank" in text) == (blank_map_note(heatmap) is not None)
    assert [b.label for b in at.get("download_button")] == ["Download report (PNG)"]


def test_diagnose_reports_a_bad_file_by_name_and_analyses_the_others(app_env):
    at = open_page("pages/diagnose.py")
    good = png_bytes(np.random.default_rng(0).integers(0, 255, (80, 96), dtype=np.uint8))
    files = [("notes.png", b"this is not an image", "image/png"), ("good.png", good, "image/png")]
    at.file_uploader[0].set_value(files).run()
    assert not at.exception, at.exception
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and "notes.png" in errors[0] and "not an image" in errors[0]
    assert "good.png: model output" in all_text(at)
    table = at.dataframe[0].value
    assert list(table["File"]) == ["notes.png", "good.png"]
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download results (CSV)", "Download report (PNG)"]


def dicom_with_patient_fields() -> bytes:
    """A small MONOCHROME2 DICOM whose header names a (fictitious) patient."""
    pixels = np.random.default_rng(1).integers(0, 4095, (64, 80), np.uint16)
    return dicom_bytes(
        pixels, PatientName="Doe^Jane", PatientID="ID-12345", PatientBirthDate="20190101"
    )


def test_diagnose_shows_technical_dicom_fields_and_no_patient_field(app_env):
    at = open_page("pages/diagnose.py")
    at.file_uploader[0].set_value(("chest.dcm", dicom_with_patient_fields(), "application/dicom"))
    at.run()
    assert not at.exception, at.exception
    assert "chest.dcm: model output" in all_text(at)
    fields = at.dataframe[0].value.set_index("Field")["Value"]
    assert fields["Format"] == "DICOM" and fields["Modality"] == "DX"
    assert fields["Photometric interpretation"] == "MONOCHROME2"
    shown = fields.to_string() + all_text(at)
    assert "Doe" not in shown and "ID-12345" not in shown and "20190101" not in shown


def test_dataset_page_shows_counts_weights_thumbnails_and_audit(app_env):
    at = open_page("pages/dataset.py")
    text = all_text(at)
    assert "32 images" in text
    assert "1.00 PNEUMONIA per NORMAL" in text and "NORMAL 1.00, PNEUMONIA 1.00" in text
    assert "No patient has images in more than one split." in text
    assert len(at.get("plotly_chart")) == 1
    assert len(at.get("image")) == 2  # one row of thumbnails per class


def test_dataset_page_explains_how_to_get_data_when_the_folder_is_missing(app_env, monkeypatch):
    monkeypatch.setenv("CXR_DATA", "/nonexistent/chest_xray")
    at = open_page("pages/dataset.py")
    assert "does not exist" in at.error[0].value
    assert "kaggle datasets download" in all_text(at)


def test_evaluate_threshold_slider_changes_the_shown_specificity(app_env):
    at = open_page("pages/evaluate.py")
    assert at.selectbox(key="eval_set").value == "validation"  # the split the model was selected on
    assert "somewhat optimistic" in all_text(at)

    def specificity() -> str:
        return next(m.value for m in at.metric if m.label == "Specificity")

    at.slider[0].set_value(0.0).run()
    assert not at.exception, at.exception
    low = specificity()
    at.slider[0].set_value(1.0).run()
    assert (low, specificity()) == ("0.000", "1.000")
    assert len(at.get("plotly_chart")) == 4  # confusion, ROC, precision-recall, calibration


def test_evaluate_gallery_filters_false_negatives(app_env):
    at = open_page("pages/evaluate.py")
    at.slider[0].set_value(1.0).run()  # every image predicted NORMAL: PNEUMONIA ones are FNs
    at.radio[0].set_value("false negatives").run()
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    # Wrong is said in a mark and a word, not by the frame's colour alone.
    assert captions and all(
        c.startswith("✗ wrong: true PNEUMONIA | predicted NORMAL") for c in captions
    )


def test_evaluate_compares_two_models_roc_curves_on_one_plot(
    app_env, monkeypatch, tmp_path, tiny_dataset
):
    models = tmp_path / "two_models"
    for name in ("first", "second"):
        make_tiny_model(models, tiny_dataset, name=name)
    monkeypatch.setenv("CXR_MODELS_DIR", str(models))
    at = open_page("pages/evaluate.py")
    at.sidebar.selectbox(key="compare_model").set_value(str(models / "second.keras")).run()
    assert not at.exception, at.exception
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    roc = next(spec for spec in specs if spec["layout"]["title"]["text"] == "ROC curve")
    names = [trace.get("name", "") for trace in roc["data"]]
    assert any(n.startswith("first (AUC") for n in names)
    assert any(n.startswith("second (AUC") for n in names)


def test_train_page_launches_a_run_refuses_a_second_and_shows_its_curves(app_env, tiny_dataset):
    at = open_page("pages/train.py")
    assert "No runs yet" in all_text(at)
    at.sidebar.text_input(key="t_name").set_value("apptest")
    at.sidebar.selectbox(key="t_backbone").set_value("small_cnn").run()
    at.sidebar.select_slider(key="t_image_size").set_value(64)
    at.sidebar.select_slider(key="t_batch_size").set_value(8)
    at.sidebar.number_input(key="t_limit_per_class").set_value(0)
    at.sidebar.slider(key="t_augment").set_value(0.0)
    next(b for b in at.button if b.label == "Launch training").click().run()
    assert not at.exception, at.exception
    assert "Run apptest started in the background." in [s.value for s in at.success]

    at.sidebar.text_input(key="t_name").set_value("second")
    next(b for b in at.button if b.label == "Launch training").click().run()
    assert "run 'apptest' is still training" in at.error[0].value

    deadline = time.monotonic() + 150
    while jobs.read_run(app_env / "apptest").active:
        assert time.monotonic() < deadline, "the tiny run did not finish in time"
        time.sleep(1)
    run = jobs.read_run(app_env / "apptest")
    assert run.state == "finished", run.status.error
    at.run()
    assert not at.exception, at.exception
    text = all_text(at)
    assert "**apptest**: finished" in text and "Finished: validation AUC" in text
    assert len(at.get("plotly_chart")) == 1  # loss, accuracy and AUC curves
    past = next(d.value for d in at.dataframe if "run" in d.value.columns)
    assert past["run"].tolist() == ["apptest"]

    next(b for b in at.button if b.label == "Use this model").click().run()
    # Validated on a handful of images: the page asks before it becomes everyone's default.
    assert "looks worse than the current default" in all_text(at)
    next(b for b in at.button if b.label == "Make it the default anyway").click().run()
    assert at.session_state["active_model"] == str(app_env / "apptest" / "model.keras")
    at.switch_page("pages/diagnose.py").run()
    assert at.sidebar.selectbox(key="model_picker").value == at.session_state["active_model"]


def wait_for_state(run_dir: Path, states: tuple[str, ...], seconds: float = 150) -> jobs.Run:
    deadline = time.monotonic() + seconds
    while (run := jobs.read_run(run_dir)).state not in states:
        assert time.monotonic() < deadline, f"run state stayed {run.state}"
        time.sleep(0.5)
    return run


def test_train_page_shows_the_error_of_a_failed_run(app_env, tmp_path):
    root = tmp_path / "two_images"
    for label in ("NORMAL", "PNEUMONIA"):
        (root / "train" / label).mkdir(parents=True)
        Image.fromarray(np.full((48, 48), 90, np.uint8)).save(root / "train" / label / "a.png")
    at = open_page("pages/train.py")
    at.sidebar.text_input(key="t_data_root").set_value(str(root))
    at.sidebar.text_input(key="t_name").set_value("doomed")
    next(b for b in at.button if b.label == "Launch training").click().run()
    assert wait_for_state(app_env / "doomed", ("failed",)).status.error
    at.run()
    errors = [e.value for e in at.error]  # the settings' own warning comes first
    assert any(e.startswith("The run failed: There are too few patients") for e in errors)


def test_train_page_cancel_button_stops_a_run(app_env):
    at = open_page("pages/train.py")
    at.sidebar.text_input(key="t_name").set_value("long")
    at.sidebar.select_slider(key="t_image_size").set_value(64)
    at.sidebar.select_slider(key="t_batch_size").set_value(8)
    at.sidebar.number_input(key="t_head_epochs").set_value(200)
    at.sidebar.number_input(key="t_finetune_epochs").set_value(0)
    at.sidebar.number_input(key="t_early_stopping_patience").set_value(50)
    next(b for b in at.button if b.label == "Launch training").click().run()
    wait_for_state(app_env / "long", ("running",))
    at.run()
    assert at.get("progress"), "an active run shows a progress bar"
    next(b for b in at.button if b.label == "Cancel run").click().run()
    assert "Stopping within a few seconds..." in [i.value for i in at.info]
    assert wait_for_state(app_env / "long", ("cancelled", "failed", "finished")).state == (
        "cancelled"
    )


def test_train_page_starts_pretrained_backbones_from_imagenet_weights(app_env):
    at = open_page("pages/train.py")
    # The default quick run: ImageNet Lite0 at 128 px (about 40 s on 2 cores for 600 images).
    assert at.sidebar.selectbox(key="t_backbone").value == "efficientnet_lite0"
    assert at.sidebar.radio(key="t_weights").value == "imagenet"
    assert "EfficientNet-Lite0" in " ".join(c.value for c in at.sidebar.caption)
    at.sidebar.selectbox(key="t_backbone").set_value("small_cnn").run()
    assert at.sidebar.radio(key="t_weights").value == "none"
    at.sidebar.selectbox(key="t_backbone").set_value("mobilenet_v2").run()
    assert at.sidebar.radio(key="t_weights").value == "imagenet"


def test_training_estimate_scales_a_past_runs_speed_by_image_area(tiny_dataset):
    from cxr_app import train as app_train
    from cxr_core.data import tables as data

    config = app_train.run_config_from(
        {
            **app_train.TRAIN_DEFAULTS,
            "t_data_root": str(tiny_dataset),
            "t_image_size": 64,
            "t_backbone": "small_cnn",
            "t_weights": "none",
        }
    )
    past = jobs.Run(
        "old",
        Path("runs/old"),
        RunStatus(images_per_second=10.0),
        RunConfig(str(tiny_dataset), ModelConfig("small_cnn", "none", image_size=128)),
    )
    text = app_train.training_estimate(config, data.scan(tiny_dataset), [past])
    # The run's own split of the 24 train images (patients grouped); 10 images/s at 128 px
    # = 40 at 64 px.
    assert text.startswith("21 training images x 2 epochs, 3 validation images: roughly")
    assert "at ~40 training images/s (the speed of run old)" in text


def test_diagnose_refuses_a_blank_image_without_verdict_or_heatmap_unless_asked(app_env):
    at = open_page("pages/diagnose.py")
    blank = png_bytes(np.full((120, 120), 90, np.uint8))
    at.file_uploader[0].set_value(("blank.png", blank, "image/png")).run()
    assert not at.exception, at.exception
    text = all_text(at)
    assert "unlike the chest X-rays" in text or "almost uniform" in text
    assert "model output" not in text and "Probability of pneumonia" not in text
    assert len(at.get("image")) == 1  # the original only, no overlay
    assert not at.get("download_button")
    at.checkbox(key="anyway_0").check().run()
    text = all_text(at)
    assert "input check refused this image" in text and "Probability of pneumonia" in text


def test_a_cancelled_run_shows_the_resume_command_with_its_folder(app_env, tiny_dataset):
    from cxr_core.runs.files import RunPaths, RunState, update_status, write_json_atomic

    paths = RunPaths(app_env / "stopped")
    paths.root.mkdir(parents=True)
    config = RunConfig(str(tiny_dataset), ModelConfig("small_cnn", "none", image_size=64))
    write_json_atomic(paths.config, config.to_dict())
    update_status(paths, state=RunState.CANCELLED, started_at="2026-01-01T10:00:00+00:00")
    at = open_page("pages/train.py")
    assert f"python -m cxr_core train --out {paths.root} --resume" in [c.value for c in at.code]
    assert "Resume run" in [b.label for b in at.button]  # the open single-user mode

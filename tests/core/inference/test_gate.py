"""The "is this a frontal chest X-ray?" input check: pixel checks, the feature gate, the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxr_core.cli import main
from cxr_core.config import ModelConfig
from cxr_core.errors import ModelLoadError
from cxr_core.imaging.decode import read_image
from cxr_core.inference import input_check as gate
from cxr_core.inference.predictor import Predictor
from cxr_core.model.build import build_model, save_model
from tests.conftest import synthetic_xray

BUNDLED = Path(__file__).resolve().parents[3] / "assets" / "models" / "cxr_lite0.keras"


def encoded(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def test_pixel_checks_refuse_blank_gradient_and_colour_and_pass_an_xray() -> None:
    xray = synthetic_xray(1, np.random.default_rng(0), 128)
    assert gate.pixel_problem(xray) is None
    assert "uniform" in gate.pixel_problem(np.full((64, 64), 128, np.uint8))
    ramp = np.tile(np.linspace(100, 110, 64), (64, 1))
    assert "uniform" in gate.pixel_problem(ramp)
    assert "colour" in gate.pixel_problem(xray, colour=0.3)


def test_decoding_measures_colour_and_grey_files_have_none() -> None:
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    grey_as_rgb = np.repeat(synthetic_xray(0, rng)[..., None], 3, axis=-1)
    assert read_image(encoded(photo)).info["colour"] > 0.2
    assert read_image(encoded(grey_as_rgb, "JPEG")).info["colour"] < 0.02
    assert read_image(encoded(grey_as_rgb[..., 0])).info["colour"] == 0.0


def test_feature_gate_refuses_far_features_and_keeps_its_validation_quantile() -> None:
    rng = np.random.default_rng(2)
    train, val = rng.normal(0, 1, (400, 16)), rng.normal(0, 1, (200, 16))
    fitted = gate.fit_gate(train, val)
    accepted = np.mean([fitted.check(f).accepted for f in val])
    assert accepted >= gate.ACCEPT_QUANTILE - 0.01
    far = fitted.check(np.full(16, 6.0))
    assert not far.accepted and far.reason == gate.NOT_A_CHEST_XRAY
    assert far.distance > far.threshold == fitted.threshold


def test_gate_file_round_trips_and_a_wrong_one_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    fitted = gate.fit_gate(rng.normal(0, 1, (100, 8)), rng.normal(0, 1, (50, 8)))
    entry = gate.save_gate(fitted, tmp_path / "m.gate.npz")
    assert entry["version"] == gate.GATE_VERSION and entry["file"] == "m.gate.npz"
    loaded = gate.load_gate(tmp_path / "m.gate.npz", 8)
    probe = rng.normal(0, 1, (5, 8))
    assert np.allclose(loaded.distances(probe), fitted.distances(probe), rtol=1e-4)
    with pytest.raises(ModelLoadError, match="does not fit"):
        gate.load_gate(tmp_path / "m.gate.npz", 9)
    (tmp_path / "bad.gate.npz").write_bytes(b"not a gate")
    with pytest.raises(ModelLoadError, match="unreadable"):
        gate.load_gate(tmp_path / "bad.gate.npz", 8)


@pytest.fixture(scope="module")
def gated_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small_cnn whose gate is fitted on synthetic X-ray features."""
    model = build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=64))
    rng = np.random.default_rng(4)
    images = np.stack([synthetic_xray(i % 2, rng) for i in range(120)])
    batch = np.repeat(images[..., None], 3, axis=-1).astype(np.float32)
    features = gate.feature_model(model).predict(batch, verbose=0)
    folder = tmp_path_factory.mktemp("gated")
    path = folder / "gated.keras"
    entry = gate.save_gate(gate.fit_gate(features[:80], features[80:]), gate.gate_path(path))
    metadata = {"backbone": "small_cnn", "image_size": 64, "threshold": 0.5, "input_gate": entry}
    return save_model(model, path, metadata)


def test_predict_json_reports_the_grade_warning_set_and_decision(
    gated_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from cxr_core.inference.population import UNUSUAL_WARNING

    copy = tmp_path / "graded.keras"
    for source in (gated_model, gated_model.with_suffix(".json"), gate.gate_path(gated_model)):
        shutil.copy(source, tmp_path / source.name.replace("gated", "graded"))
    sidecar = json.loads(copy.with_suffix(".json").read_text())
    sidecar["input_gate"]["file"] = gate.gate_path(copy).name
    sidecar["population_check"] = {"unusual_threshold": 0.0, "unusual_quantile": 0.95}
    sidecar["conformal"] = {"coverage": 0.95, "normal_max": None, "pneumonia_min": None}
    copy.with_suffix(".json").write_text(json.dumps(sidecar))
    xray = tmp_path / "xray.png"
    xray.write_bytes(encoded(synthetic_xray(1, np.random.default_rng(9))))
    assert main(["predict", "--model", str(copy), "--json", str(xray)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["input_check"] == "unusual" and line["warning"] == UNUSUAL_WARNING
    assert line["prediction_set"] == ["NORMAL", "PNEUMONIA"] and line["decision"] == "UNCERTAIN"
    assert line["label"] in ("NORMAL", "PNEUMONIA")  # the threshold's verdict stays as it was


def test_predict_refuses_what_the_gate_refuses_and_scores_it_only_when_asked(
    gated_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xray = tmp_path / "xray.png"
    xray.write_bytes(encoded(synthetic_xray(1, np.random.default_rng(9))))
    blank = tmp_path / "blank.png"
    blank.write_bytes(encoded(np.full((80, 80), 200, np.uint8)))
    photo = tmp_path / "photo.png"
    photo.write_bytes(encoded(np.random.default_rng(5).integers(0, 255, (80, 80, 3), np.uint8)))
    assert main(["predict", "--model", str(gated_model), "--json", str(xray), str(blank),
                 str(photo)]) == 2  # fmt: skip
    out = capsys.readouterr().out
    lines = {Path(r["file"]).name: r for r in map(json.loads, out.strip().splitlines())}
    assert lines["xray.png"]["input_check"] == "typical" and "label" in lines["xray.png"]
    assert "uniform" in lines["blank.png"]["error"] and "label" not in lines["blank.png"]
    assert "colour" in lines["photo.png"]["error"]
    assert main(["predict", "--model", str(gated_model), "--score-anyway", str(blank)]) == 0
    assert "REFUSED by the input check" in capsys.readouterr().out


def test_predictor_refuses_a_missing_gate_file(gated_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.keras"
    copy.write_bytes(gated_model.read_bytes())
    copy.with_suffix(".json").write_bytes(gated_model.with_suffix(".json").read_bytes())
    with pytest.raises(ModelLoadError, match="input check"):
        Predictor.from_path(copy)


@pytest.fixture(scope="module")
def bundled() -> Predictor:
    return Predictor.from_path(BUNDLED)


def test_bundled_gate_refuses_blank_noise_and_colour_photo(bundled: Predictor) -> None:
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(6)
    photo = load_sample_images().images[0]  # china.jpg, colour
    grey_photo = np.asarray(Image.fromarray(photo).convert("L"))
    cases = {
        "blank": np.full((512, 512), 128, np.uint8),
        "noise": rng.integers(0, 256, (512, 512), dtype=np.uint8),
        "colour photo": photo,
        "grey photo": grey_photo,
    }
    for name, pixels in cases.items():
        decoded = read_image(encoded(pixels))
        check = bundled.predict(decoded.pixels, colour=decoded.info["colour"]).input_check
        assert not check.accepted, name


def test_bundled_gate_accepts_every_shared_full_resolution_val_xray(
    bundled: Predictor, shared_data: Path
) -> None:
    files = sorted((shared_data / "val").rglob("*.jpeg"))
    assert len(files) == 16
    for path in files:
        decoded = read_image(path)
        assert bundled.predict(decoded.pixels, decoded.info["colour"]).input_check.accepted, path


def test_bundled_gate_refuses_most_of_the_generated_non_xray_corpus(
    bundled: Predictor, tmp_path: Path
) -> None:
    from scripts.non_xray_corpus import make_corpus

    refused = []
    for path, _ in make_corpus(tmp_path):
        decoded = read_image(path)
        refused.append(
            not bundled.predict(decoded.pixels, decoded.info["colour"]).input_check.accepted
        )
    assert np.mean(refused) >= 0.9


def test_diagnose_page_uses_the_bundled_input_check(monkeypatch, tmp_path: Path) -> None:
    from sklearn.datasets import load_sample_images
    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parents[3]
    monkeypatch.setenv("CXR_MODELS_DIR", str(BUNDLED.parent))
    monkeypatch.setenv("CXR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.chdir(root)
    grey_photo = np.asarray(Image.fromarray(load_sample_images().images[1]).convert("L"))
    at = AppTest.from_file(str(root / "streamlit_app.py"), default_timeout=180).run()
    at.switch_page("pages/diagnose.py").run()
    at.file_uploader[0].set_value(("flower.png", encoded(grey_photo), "image/png")).run()
    assert not at.exception, at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert gate.NOT_A_CHEST_XRAY in warnings  # refused by the feature gate, not a pixel check
    assert not any("model output" in m.value for m in at.markdown)

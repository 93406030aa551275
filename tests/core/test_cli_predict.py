"""``python -m cxr_core predict``: JSON lines, per-file errors, heatmap files, exit status."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from cxr_core.cli import main
from cxr_core.config import ModelConfig
from cxr_core.imaging.scoring import DECODE_SIDE, decode_for_model
from cxr_core.model.build import build_model, save_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=64))
    folder = tmp_path_factory.mktemp("model")
    return save_model(
        model,
        folder / "tiny.keras",
        {
            "backbone": "small_cnn",
            "image_size": 64,
            "threshold": 0.4,
            "last_conv_layer": "last_conv",
        },
    )


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.strip().splitlines()]


def test_predicts_every_shared_full_resolution_val_image(
    tiny_model: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sorted(str(p) for p in (shared_data / "val").rglob("*.jpeg"))
    assert len(files) == 16
    assert main(["predict", "--model", str(tiny_model), *files, "--json"]) == 0
    results = json_lines(capsys.readouterr().out)
    assert [r["file"] for r in results] == files
    for result in results:
        assert 0.0 <= result["probability"] <= 1.0
        assert result["threshold"] == 0.4
        assert result["label"] == ("PNEUMONIA" if result["probability"] >= 0.4 else "NORMAL")


def test_a_bad_file_gets_its_error_line_and_the_others_go_on(
    tiny_model: Path, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = next((shared_data / "val" / "NORMAL").glob("*.jpeg"))
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    missing = tmp_path / "missing.jpeg"
    argv = ["predict", "--model", str(tiny_model), str(bad), str(good), str(missing), "--json"]
    assert main(argv) == 2
    results = json_lines(capsys.readouterr().out)
    assert [set(r) for r in results] == [
        {"file", "error"},
        {"file", "probability", "label", "threshold", "input_check", "prediction_set", "decision"},
        {"file", "error"},
    ]
    assert results[0]["error"] and results[2]["error"]


def test_heatmap_dir_gets_one_overlay_per_good_file(
    tiny_model: Path, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = sorted((shared_data / "val" / "PNEUMONIA").glob("*.jpeg"))[:2]
    out = tmp_path / "heatmaps"
    argv = ["predict", "--model", str(tiny_model), *map(str, images), "--heatmap-dir", str(out)]
    assert main(argv) == 0
    written = sorted(out.iterdir())
    assert len(written) == 2 and all(p.suffix == ".png" for p in written)
    for path, source in zip(written, images, strict=True):
        overlay = cv2.imread(str(path))
        # The overlay is drawn on the image the model saw
        # (cxr_core.imaging.scoring.decode_for_model):
        # the file itself, or, above DECODE_SIDE, the same picture shrunk to it.
        seen = decode_for_model(source).pixels
        assert overlay.shape == (*seen.shape, 3) and max(seen.shape) <= DECODE_SIDE
    text = capsys.readouterr().out
    assert "research demo" in text and "P(pneumonia)" in text


def test_an_unreadable_model_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "--model", str(tmp_path / "none.keras"), "x.png"]) == 2
    assert capsys.readouterr().err.startswith("error: model file not found")

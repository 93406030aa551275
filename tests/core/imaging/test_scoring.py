"""One decode-and-preprocess path: a file gets one probability wherever it is scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxr_core.cli import main
from cxr_core.data import tables as data
from cxr_core.errors import DataError
from cxr_core.evaluation import stress
from cxr_core.evaluation.eval_sets import per_image_rows, predict_table
from cxr_core.imaging.scoring import DECODE_SIDE, decode_for_model, input_batches, score_files
from cxr_core.inference.predictor import Predictor

TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def mixed_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kaggle layout with the files that made the paths disagree: a JPEG over DECODE_SIDE
    (decoded reduced), an RGB JPEG, a PNG and small JPEGs of odd sizes."""
    from tests.conftest import synthetic_xray

    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(3)
    specs = [
        ("NORMAL", "IM-0001-0001.jpeg", 1500, "L"),
        ("NORMAL", "IM-0002-0001.png", 300, "L"),
        ("NORMAL", "IM-0003-0001.jpeg", 97, "RGB"),
        ("PNEUMONIA", "person1_virus_1.jpeg", 1300, "RGB"),
        ("PNEUMONIA", "person2_bacteria_2.png", 64, "L"),
        ("PNEUMONIA", "person3_virus_3.jpeg", 224, "L"),
    ]
    for label, name, side, mode in specs:
        folder = root / "test" / label
        folder.mkdir(parents=True, exist_ok=True)
        pixels = synthetic_xray(int(label == "PNEUMONIA"), rng, size=side)
        image = Image.fromarray(pixels).convert(mode)
        image.save(folder / name, quality=90)
    return root


def _app_diagnose_probability(predictor: Predictor, path: str) -> float:
    # What the Diagnose page's cached analysis runs (cxr_app.loaders._analyse).
    from cxr_core.inference.upload import analyse_upload

    analysis = analyse_upload(predictor, Path(path).read_bytes(), Path(path).name)
    return analysis.probability


def test_a_file_scores_the_same_on_every_path(
    tiny_model_dir: Path, mixed_dataset: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    model_path = tiny_model_dir / "tiny.keras"
    predictor = Predictor.from_path(model_path)
    table = data.scan(mixed_dataset)
    paths = [str(p) for p in table["path"]]
    size = predictor.image_size

    diagnose = np.array([_app_diagnose_probability(predictor, p) for p in paths])
    single = np.array([predictor.predict(decode_for_model(p).pixels).probability for p in paths])

    assert main(["predict", "--model", str(model_path), "--json", "--score-anyway", *paths]) == 0
    predicted = {
        Path(row["file"]).name: row["probability"]
        for row in map(json.loads, capsys.readouterr().out.strip().splitlines())
    }
    cli_predict = np.array([predicted[Path(p).name] for p in paths])

    argv = ["evaluate", "--model", str(model_path), "--data", str(mixed_dataset)]
    assert main([*argv, "--json", "--per-image", "--bootstrap", "10"]) == 0
    rows = json.loads(capsys.readouterr().out)["per_image"]
    evaluated = {row["file"]: row["probability"] for row in rows}
    cli_evaluate = np.array(
        [evaluated[f"{lab}/{Path(p).name}"] for p, lab in zip(paths, table["label"], strict=True)]
    )

    batched = predict_table(predictor.model, table, size, batch_size=4)
    clean = stress.stressed_logits(predictor.model, table, size, batch_size=4)[stress.CLEAN]

    from cxr_app import catalog
    from cxr_app import evaluate as app_evaluate

    monkeypatch.setenv("CXR_RUNS_DIR", str(mixed_dataset.parent / "runs_for_scores"))
    entry = catalog.ModelEntry(str(model_path), "tiny", "run", model_path.stat().st_mtime)
    page = app_evaluate.predictions(entry, table)

    for name, scores in {
        "predict": cli_predict,
        "evaluate": cli_evaluate,
        "predict_table": batched,
        "stress suite": stress.sigmoid(clean),
        "Evaluate page": page,
        "Predictor": single,
    }.items():
        np.testing.assert_allclose(scores, diagnose, atol=TOLERANCE, rtol=0, err_msg=name)


def test_large_jpeg_is_decoded_no_larger_than_the_decode_side(mixed_dataset: Path) -> None:
    big = mixed_dataset / "test" / "NORMAL" / "IM-0001-0001.jpeg"
    decoded = decode_for_model(big)
    assert max(decoded.pixels.shape) == DECODE_SIDE
    assert decoded.info["width"] == 1500  # the stored file's size is still reported


def test_batches_keep_the_order_and_size(mixed_dataset: Path) -> None:
    paths = sorted(str(p) for p in mixed_dataset.rglob("*.*"))
    batches = list(input_batches(paths, 32, batch_size=4))
    assert [b.shape for b in batches] == [(4, 32, 32, 3), (2, 32, 32, 3)]
    first = decode_for_model(paths[5]).pixels
    # Channels repeat one grey plane; a plain resized copy of the last file is close to it.
    assert np.array_equal(batches[1][1][..., 0], batches[1][1][..., 2])
    assert abs(float(batches[1][1].mean()) - float(first.mean())) < 8


def test_an_undecodable_file_names_itself(tmp_path: Path, tiny_model_dir: Path) -> None:
    bad = tmp_path / "broken.jpeg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    predictor = Predictor.from_path(tiny_model_dir / "tiny.keras")
    with pytest.raises(DataError, match="broken.jpeg"):
        score_files(predictor.model, [str(bad)], 64)


def test_per_image_rows_give_decision_and_truth() -> None:
    import pandas as pd

    table = pd.DataFrame(
        {
            "path": ["/srv/x/NORMAL/a.jpeg", "/srv/x/PNEUMONIA/b.png"],
            "label": ["NORMAL", "PNEUMONIA"],
        }
    )
    rows = per_image_rows(table, np.array([0.5, 0.4999999], np.float32), threshold=0.5)
    assert rows[0] == {
        "file": "NORMAL/a.jpeg",
        "probability": 0.5,
        "label": "NORMAL",
        "decision": "PNEUMONIA",
        "correct": False,
    }
    assert rows[1]["decision"] == "NORMAL" and not rows[1]["correct"]
    assert "/srv" not in json.dumps(rows)

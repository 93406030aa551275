"""The command line: the scan -> train -> evaluate loop, and exit 2 with one line on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cxr_core.backbones import BACKBONES
from cxr_core.cli import main

REPO = Path(__file__).resolve().parents[2]
EVALUATE_KEYS = {
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "roc_auc",
    "pr_auc",
    "brier",
    "ece",
    "threshold",
    "n",
    "confusion_matrix",
}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cxr_core`` as a user would, in a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "cxr_core", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def single_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    return lines[0]


def test_scan_json_reports_counts_imbalance_and_weights(
    tiny_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(tiny_dataset), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 32
    assert summary["counts"]["train"] == {"NORMAL": 12, "PNEUMONIA": 12, "total": 24}
    assert summary["imbalance_ratio"] == 1.0
    assert summary["class_weights"] == {"NORMAL": 1.0, "PNEUMONIA": 1.0}


def test_scan_of_shared_train_split_gives_kaggle_weights(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(shared_data), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"]["train"]["NORMAL"] == 1341
    assert summary["counts"]["train"]["PNEUMONIA"] == 3875
    # balanced weights n / (2 n_c): 5216 / 2682 and 5216 / 7750
    assert summary["class_weights"]["NORMAL"] == pytest.approx(1.94482, abs=1e-4)
    assert summary["class_weights"]["PNEUMONIA"] == pytest.approx(0.67303, abs=1e-4)


def test_train_then_evaluate_through_the_command_line(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "runs" / "cli"
    trained = run_cli(
        "train",
        "--data",
        str(tiny_dataset),
        "--backbone",
        "small_cnn",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--finetune-epochs",
        "0",
        "--batch-size",
        "8",
        "--calibration",
        "none",  # one epoch on 24 images: too flat for Platt scaling
        "--out",
        str(run),
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "finished:" in trained.stdout
    # Evaluate through the same entry point in this process (TensorFlow is loaded here already).
    argv = ["evaluate", "--model", str(run / "model.keras"), "--data", str(tiny_dataset)]
    assert main([*argv, "--split", "val", "--json", "--bootstrap", "200"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= EVALUATE_KEYS
    assert report["n"] == 8
    assert set(report["confusion_matrix"]) == {"tn", "fp", "fn", "tp"}
    assert sum(report["confusion_matrix"].values()) == 8


def test_bad_option_exits_2_with_one_line() -> None:
    done = run_cli("train", "--data", ".", "--out", "x", "--image-size", "big")
    assert done.returncode == 2
    assert "image-size" in single_error_line(done.stderr)


def test_unknown_backbone_exits_2_listing_choices() -> None:
    done = run_cli("train", "--data", ".", "--out", "x", "--backbone", "alexnet")
    assert done.returncode == 2
    assert "mobilenet_v2" in single_error_line(done.stderr)


def test_out_of_range_setting_exits_2_naming_the_field(tmp_path: Path) -> None:
    done = run_cli("train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--lr", "5")
    assert done.returncode == 2
    assert "head_learning_rate" in single_error_line(done.stderr)


def test_missing_data_folder_exits_2(tmp_path: Path) -> None:
    done = run_cli("scan", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "nowhere" in single_error_line(done.stderr)


def test_empty_class_folder_exits_2_naming_it(tiny_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    for image in (root / "train" / "NORMAL").iterdir():
        image.unlink()
    done = run_cli("scan", str(root))
    assert done.returncode == 2
    assert "NORMAL" in single_error_line(done.stderr)


def test_unreadable_model_exits_2(tiny_dataset: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.keras"
    model.write_bytes(b"garbage")
    done = run_cli("evaluate", "--model", str(model), "--data", str(tiny_dataset))
    assert done.returncode == 2
    assert "model" in single_error_line(done.stderr)


def test_missing_split_exits_2_naming_the_splits_found(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cxr_core.config import ModelConfig
    from cxr_core.model.build import build_model, save_model

    model = build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=32))
    path = save_model(
        model, tmp_path / "m.keras", {"backbone": "small_cnn", "image_size": 32, "threshold": 0.5}
    )
    assert main(["evaluate", "--model", str(path), "--data", str(tiny_dataset)]) == 2
    assert "split 'test' not found" in capsys.readouterr().err


def test_help_lists_every_backbone() -> None:
    done = run_cli("train", "--help")
    assert done.returncode == 0
    assert all(name in done.stdout for name in BACKBONES)


def test_from_scratch_training_runs_the_epochs_asked_for() -> None:
    from cxr_core.cli import _scratch_note
    from cxr_core.cli_parsers import build_parser, run_config_from_args
    from cxr_core.training.train import plan_phases

    def parsed(*extra: str):
        argv = ["train", "--data", "d", "--weights", "none", "--epochs", "3", "--out", "r"]
        return run_config_from_args(build_parser().parse_args([*argv, *extra]))

    config = parsed()
    assert [(p.name, p.epochs) for p in plan_phases(config)] == [("scratch", 3)]
    assert _scratch_note(config, plan_phases) is None
    both = parsed("--finetune-epochs", "4")
    assert plan_phases(both)[0].epochs == 7
    assert "one phase of 7 epochs (--epochs 3 + --finetune-epochs 4)" in _scratch_note(
        both, plan_phases
    )
    pretrained = run_config_from_args(
        build_parser().parse_args(["train", "--data", "d", "--epochs", "3", "--out", "r"])
    )
    assert pretrained.train.finetune_epochs == 4  # the documented default for ImageNet starts


def test_scan_and_a_missing_data_folder_answer_without_importing_tensorflow(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    # The TensorFlow import takes seconds: a mistyped --data gets its line before it.
    probe = (
        "import sys; from cxr_core.cli import main; "
        "codes = [main(['scan', sys.argv[1], '--json']), "
        "main(['train', '--data', sys.argv[2], '--out', sys.argv[3]])]; "
        "print(codes, 'tensorflow' in sys.modules)"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            str(tiny_dataset),
            str(tmp_path / "gone"),
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.stdout.strip().splitlines()[-1] == "[0, 2] False", done.stderr[-2000:]
    assert "gone does not exist" in done.stderr
    assert not (tmp_path / "r").exists()

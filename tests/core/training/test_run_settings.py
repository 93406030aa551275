"""One mapping from settings to RunConfig: the CLI's train options and the Train sidebar agree,
and a bad value gets one ConfigError naming it; run estimates come from measured throughput."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cxr_app import train as app_train
from cxr_core.cli import main
from cxr_core.cli_parsers import build_parser, run_config_from_args
from cxr_core.errors import ConfigError
from cxr_core.runs.files import RunState, RunStatus
from cxr_core.runs.progress import FORWARD_SPEEDUP, Workload, remaining_seconds, seconds_left
from cxr_core.training.run_settings import run_config

REPO = Path(__file__).resolve().parents[3]


def cli_config(*options: str):
    return run_config_from_args(build_parser().parse_args(["train", "--out", "r", *options]))


def sidebar_config(**values: object):
    return app_train.run_config_from({**app_train.TRAIN_DEFAULTS, **values})


def test_cli_options_and_sidebar_values_give_the_same_run(tiny_dataset: Path) -> None:
    from_cli = cli_config(
        *("--data", str(tiny_dataset), "--backbone", "mobilenet_v2", "--image-size", "160"),
        *("--epochs", "3", "--finetune-epochs", "2", "--batch-size", "16", "--lr", "0.003"),
        *("--finetune-lr", "3e-05", "--finetune-layers", "40", "--patience", "5"),
        *("--no-class-weights", "--augment", "0.5", "--acquisition-augment", "0"),
        *("--val-fraction", "0.2", "--seed", "7", "--limit-per-class", "250"),
        *("--dropout", "0.3", "--threshold-rule", "sensitivity", "--threshold-scores", "clean"),
        *("--calibration", "none", "--contrast", "none"),
    )
    from_sidebar = sidebar_config(
        t_data_root=f"  {tiny_dataset}  ",
        t_backbone="mobilenet_v2",
        t_image_size=160,
        t_head_epochs=3,
        t_finetune_epochs=2,
        t_batch_size=16,
        t_head_learning_rate=3e-3,
        t_finetune_learning_rate=3e-5,
        t_finetune_layers=40,
        t_early_stopping_patience=5,
        t_class_weighting=False,
        t_augment=0.5,
        t_acquisition_augment=0.0,
        t_val_fraction=0.2,
        t_seed=7,
        t_limit_per_class=250,
        t_dropout=0.3,
        t_threshold_rule="sensitivity",
        t_threshold_scores="clean",
        t_calibration="none",
        t_contrast="none",
    )
    assert from_cli == from_sidebar
    assert from_cli.data_root == str(tiny_dataset.resolve())
    assert from_cli.train.class_weighting is False and from_cli.data.limit_per_class == 250


def test_unset_finetune_epochs_follow_the_weights_and_zero_means_every_image() -> None:
    scratch = run_config({"data_root": "d", "weights": "none", "limit_per_class": 0})
    assert scratch.train.finetune_epochs == 0 and scratch.data.limit_per_class is None
    assert run_config({"data_root": "d"}).train.finetune_epochs == 4
    assert cli_config("--data", "d", "--weights", "none") == scratch


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"t_image_size": "big"}, "image_size must be an integer. Received: image_size='big'"),
        (
            {"t_batch_size": 0},
            "batch_size must be an integer from 1 to 1024. Received: batch_size=0",
        ),
        ({"t_head_learning_rate": float("nan")}, "head_learning_rate must be a number"),
        ({"t_class_weighting": "yes"}, "class_weighting must be true or false"),
        ({"t_data_root": "   "}, "choose a dataset folder"),
        ({"t_weights": "file", "t_weights_file": "/no/such.weights.h5"}, "existing weights file"),
        ({"t_val_fraction": 0.9}, "val_fraction must be a number in (0, 0.5]"),
    ],
)
def test_a_bad_sidebar_value_is_one_config_error_naming_it(values, message) -> None:
    with pytest.raises(ConfigError) as caught:
        sidebar_config(**{"t_data_root": "d", **values})
    assert message in str(caught.value)


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="colour is not a training setting"):
        run_config({"data_root": "d", "colour": "blue"})


def test_the_cli_refuses_a_missing_weights_file_with_one_line(tmp_path, capsys) -> None:
    argv = ["train", "--data", str(tmp_path), "--weights", "gone.h5", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: weights must be 'imagenet', 'none' or an")
    assert not (tmp_path / "r").exists()  # refused before the run folder is made


def test_remaining_time_counts_training_validation_and_finishing() -> None:
    work = Workload(
        train_images=100, val_images=30, batch_size=10, total_epochs=2, finish_images=60
    )
    assert remaining_seconds(work, 1, 0, None) is None  # nothing measured yet
    # 200 training images at 10/s; 2 validations of 30 and 60 finishing images, unmeasured.
    assert remaining_seconds(work, 1, 0, 10.0) == pytest.approx(20 + 120 / (10 * FORWARD_SPEEDUP))
    assert remaining_seconds(work, 1, 0, 10.0, 60.0, overhead=7.5) == pytest.approx(20 + 2 + 7.5)
    assert remaining_seconds(work, 2, 5, 10.0, forward_rate=60.0) == pytest.approx(5 + 1.5)
    assert remaining_seconds(work, 2, 10, 10.0, 60.0, validated=1.0) == pytest.approx(1)
    assert remaining_seconds(work, 3, 0, 10.0, 60.0) == pytest.approx(1)  # finishing only


def test_the_shown_time_left_counts_down_from_when_it_was_estimated() -> None:
    written = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)
    status = RunStatus(RunState.RUNNING, eta_seconds=90, eta_at=written.isoformat())
    assert seconds_left(status, written + timedelta(seconds=30)) == pytest.approx(60)
    assert seconds_left(status, written + timedelta(seconds=300)) == 0.0
    assert seconds_left(RunStatus(RunState.RUNNING)) is None


def test_the_monitor_modules_do_not_import_tensorflow() -> None:
    code = (
        "import sys, cxr_core.runs.jobs, cxr_core.runs.progress, cxr_core.training.run_settings, "
        "cxr_core.runs.app_settings; print('tensorflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_the_finishing_workload_scores_the_suite_on_the_runs_stress_images() -> None:
    from cxr_core.runs.plan import STRESS_PASSES, run_workload

    default = run_workload(run_config({"data_root": "d", "input_gate": False}), 1000, 500)
    fewer = run_workload(
        run_config({"data_root": "d", "input_gate": False, "stress_images": 50}), 1000, 500
    )
    assert default.finish_images == 500 + 300 * (STRESS_PASSES - 1)
    assert fewer.finish_images == 500 + 50 * (STRESS_PASSES - 1)
    assert cli_config("--data", "d", "--stress-images", "50").train.stress_images == 50
    assert sidebar_config(t_data_root="d", t_stress_images=50).train.stress_images == 50

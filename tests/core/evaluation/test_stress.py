"""The stress suite, Platt calibration, the threshold on stressed scores and `stress --json`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxr_core.cli import main
from cxr_core.config import ModelConfig
from cxr_core.errors import DataError
from cxr_core.evaluation import stress
from cxr_core.model.build import build_model, save_model
from cxr_core.stats import metrics as evaluate
from cxr_core.stats.calibration import fit_platt, fold_into_model
from tests.conftest import synthetic_xray

EVALUATE_KEYS = {
    "accuracy", "precision", "recall", "sensitivity", "specificity", "npv", "f1", "roc_auc",
    "pr_auc", "brier", "ece", "threshold", "n", "prevalence", "confusion_matrix", "ci",
}  # fmt: skip


def test_perturb_applies_one_key_to_a_batch_with_a_seed_per_image() -> None:
    images = np.stack([synthetic_xray(i, np.random.default_rng(i), 64) for i in (0, 1)])
    by_name = {p.name: p for p in stress.PERTURBATIONS}
    out = stress.perturb(images, by_name["gaussian_noise@3"], seed=5)
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    assert np.array_equal(out, stress.perturb(images, by_name["gaussian_noise@3"], seed=5))
    assert not np.array_equal(out, stress.perturb(images, by_name["gaussian_noise@3"], seed=6))
    assert stress.perturb(images, by_name["brightness_down@5"]).mean() < images.mean()


def test_stress_report_numbers_on_known_scores() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    logits = {
        "clean": np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0]),
        "blur": np.array([-3.0, 0.5, -1.0, -0.5, 2.0, 3.0]),  # one FP, one FN: 2 flips
    }
    report = stress.stress_report(labels, logits, threshold=0.5, n_resamples=20)
    blur = report["perturbations"]["blur"]
    assert set(blur) >= EVALUATE_KEYS and "curves" not in blur
    assert report["clean"]["roc_auc"] == 1.0 and report["clean"]["accuracy"] == 1.0
    assert blur["sensitivity"] == pytest.approx(2 / 3)
    assert blur["specificity"] == pytest.approx(2 / 3)
    assert blur["flip_rate"] == pytest.approx(2 / 6)
    assert blur["balanced_error"] == pytest.approx(1 / 3)
    assert blur["roc_auc"] == pytest.approx(8 / 9)
    assert report["summary"]["worst"]["flip_rate"] == pytest.approx(1 / 3)
    assert report["summary"]["worst_perturbation"]["roc_auc"] == "blur"
    with pytest.raises(DataError):
        stress.stress_report(labels, {"blur": logits["blur"]}, 0.5)


def test_threshold_on_pooled_scores_keeps_sensitivity_under_shift() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 200)
    clean = np.where(labels == 1, 3.0, -3.0) + rng.normal(0, 1, 400)
    logits = {"clean": clean, "darker": clean - 1.5}  # shift lowers every logit
    y, pooled = stress.pooled(labels, logits)
    on_clean = evaluate.choose_threshold(labels, stress.sigmoid(clean), "sensitivity", 0.95)
    on_pooled = evaluate.choose_threshold(y, stress.sigmoid(pooled), "sensitivity", 0.95)
    darker_positive = stress.sigmoid(logits["darker"][labels == 1])
    assert on_pooled < on_clean
    assert (darker_positive >= on_pooled).mean() > (darker_positive >= on_clean).mean()


def test_platt_scaling_lowers_ece_of_overconfident_scores_and_folds_into_the_model() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    logits = 4.0 * (np.where(labels == 1, 1.0, -1.0) + rng.normal(0, 1.2, 2000))
    scaling = fit_platt(labels, logits)
    before = evaluate.expected_calibration_error(labels, stress.sigmoid(logits))
    after = evaluate.expected_calibration_error(labels, stress.sigmoid(scaling.apply(logits)))
    assert 0 < scaling.scale < 1 and after < before / 2
    model = build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=64))
    batch = np.repeat(synthetic_xray(1, rng, 64)[None, ..., None], 3, -1).astype("float32")
    raw = float(stress.logit_model(model)(batch)[0, 0])
    fold_into_model(model, scaling)
    assert float(stress.logit_model(model)(batch)[0, 0]) == pytest.approx(
        scaling.apply(raw), abs=1e-4
    )
    with pytest.raises(DataError):
        fit_platt(np.zeros(10), np.arange(10.0))


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 64 px small_cnn saved with a 0.5 threshold."""
    model = build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=64))
    metadata = {"backbone": "small_cnn", "image_size": 64, "threshold": 0.5}
    return save_model(model, tmp_path_factory.mktemp("stress") / "m.keras", metadata)


def test_stress_json_has_every_perturbation_with_evaluate_keys(
    tiny_dataset: Path, untrained_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = untrained_model
    code = main(["stress", "--model", str(path), "--data", str(tiny_dataset), "--split", "val",
                 "--json", "--bootstrap", "20"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"threshold", "clean", "perturbations", "summary", "split", "n"}
    keys = set(report["perturbations"])  # JSON output sorts keys
    assert keys == {p.name for p in stress.PERTURBATIONS} and len(keys) == 85
    assert {"pixelate@1", "gamma_corr_down@5", "lung_crop@3", "markers@5"} <= keys
    for metrics in report["perturbations"].values():
        assert EVALUATE_KEYS | {"flip_rate", "balanced_error"} <= set(metrics)
        assert metrics["n"] == 8
    summary = report["summary"]
    assert {"worst", "worst_perturbation", "mean", "worst_held_out", "medmnist_c"} <= set(summary)
    assert summary["medmnist_c"]["families"] == 13
    assert report["split"] == "val" and report["threshold"] == 0.5


def test_stress_text_output_reads_the_typed_report(capsys: pytest.CaptureFixture[str]) -> None:
    from cxr_core.cli import _print_stress
    from cxr_core.sidecar_reports import StressReport

    labels = np.array([0, 1] * 10)
    logits = {"clean": 3.0 * labels - 1.5, "pixelate@5": np.zeros(20)}
    _print_stress(StressReport.from_dict(stress.stress_report(labels, logits, 0.5, 10)), "val", 20)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "val: 20 images, threshold 0.500"
    assert lines[2].split() == ["clean", "1.000", "1.000", "1.000", lines[2].split()[4], "0.000"]
    assert lines[3].split()[0] == "pixelate@5" and lines[3].split()[-1] == "0.500"
    assert lines[4].startswith("  worst: roc_auc 0.500 (pixelate@5)")


def test_stress_on_a_split_the_dataset_lacks_is_one_error_line(
    tiny_dataset: Path, untrained_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = untrained_model
    assert main(["stress", "--model", str(path), "--data", str(tiny_dataset)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "validation" in error and len(error.splitlines()) == 1


def test_the_run_plan_counts_one_validation_pass_per_perturbation_plus_clean():
    from cxr_core.evaluation.stress import PERTURBATIONS
    from cxr_core.runs.plan import STRESS_PASSES

    assert len(PERTURBATIONS) + 1 == STRESS_PASSES


def test_relative_balanced_error_uses_medmnist_c_alexnet_baseline() -> None:
    from cxr_core.imaging.corruptions import MEDMNIST_C_ALEXNET

    clean = {"sensitivity": 1.0, "specificity": 0.9}  # balanced error 0.05
    reports = {"pixelate@1": {"balanced_error": 0.15}, "pixelate@5": {"balanced_error": 0.25}}
    found = stress.relative_balanced_error(clean, reports)
    alexnet = MEDMNIST_C_ALEXNET
    assert found["balanced_error"] == pytest.approx(0.2 / alexnet["pixelate"])
    assert found["relative_balanced_error"] == pytest.approx(
        (0.2 - 0.05) / (alexnet["pixelate"] - alexnet["clean"])
    )
    assert stress.relative_balanced_error(clean, {"zoom_in@1": {"balanced_error": 0.1}}) == {}


def test_heat_table_lays_a_metric_out_as_family_by_severity() -> None:
    report = {
        "clean": {"specificity": 0.9},
        "perturbations": {
            "zoom_in@2": {"specificity": 0.7},  # sorted JSON puts it before pixelate
            "blur": {"specificity": 0.6},  # a suite v1 key
            "pixelate@1": {"specificity": 0.8},
            "pixelate@5": {"specificity": 0.5},
        },
    }
    from cxr_core.evaluation.model_card import stress_heat_table
    from cxr_core.sidecar_reports import StressReport

    table = stress_heat_table(StressReport.from_dict(report), "specificity")
    assert list(table.index) == ["pixelate", "zoom_in", "blur"]
    assert list(table.columns) == ["clean", 1, 2, 3, 4, 5]
    assert table.loc["pixelate", 5] == 0.5 and table.loc["zoom_in", 2] == 0.7
    assert table.loc["blur", 1] == 0.6 and np.isnan(table.loc["pixelate", 3])
    assert (table["clean"] == 0.9).all()


def test_suite_subset_is_fixed_stratified_and_keeps_patients_whole() -> None:
    import pandas as pd

    rows = [(f"p{i // 2}_{i}.png", (i // 2) % 4 != 0, f"p{i // 2}") for i in range(400)]
    table = pd.DataFrame(rows, columns=["path", "label_index", "patient_id"])
    table["label_index"] = table["label_index"].astype(int)
    subset = stress.suite_subset(table, 100, seed=3)
    assert subset.equals(stress.suite_subset(table, 100, seed=3))
    assert 95 <= len(subset) <= 105
    assert subset["label_index"].mean() == pytest.approx(table["label_index"].mean(), abs=0.05)
    chosen = set(subset["patient_id"])
    assert table[table["patient_id"].isin(chosen)].index.isin(subset.index).all()
    assert stress.suite_subset(table, 1000).equals(table)

"""The sidecar's stress, calibration and input-check sections: typed, checked, and written back
exactly as read (the bundled sidecar round-trips), older shapes still load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxr_core.errors import DataError, ModelLoadError
from cxr_core.evaluation.model_card import robustness_lines, stress_rows
from cxr_core.evaluation.stress import stress_report
from cxr_core.inference import input_check
from cxr_core.sidecar import ModelMetadata, read_metadata
from cxr_core.sidecar_reports import (
    CalibrationEntry,
    InputGateEntry,
    StressReport,
    SuiteMetrics,
)

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "assets" / "models" / "cxr_lite0.keras"
BASE = {"backbone": "small_cnn", "image_size": 64, "threshold": 0.5}
SECTIONS = ("stress", "calibration", "input_gate")


def _written_back(metadata: ModelMetadata) -> dict:
    return {
        "stress": metadata.stress.to_dict(),
        "calibration": metadata.calibration.to_dict(),
        "input_gate": metadata.input_gate.to_dict(),
    }


def test_the_bundled_sidecar_loads_typed_and_writes_back_the_same_json() -> None:
    stored = json.loads(BUNDLED.with_suffix(".json").read_text(encoding="utf-8"))
    metadata = read_metadata(BUNDLED)
    assert isinstance(metadata.stress, StressReport)
    assert isinstance(metadata.calibration, CalibrationEntry)
    assert isinstance(metadata.input_gate, InputGateEntry)
    again = _written_back(metadata)
    assert again == {key: stored[key] for key in SECTIONS}
    # The same text too, not only equal values (an int stays an int).
    for key in SECTIONS:
        assert json.dumps(again[key], sort_keys=True) == json.dumps(stored[key], sort_keys=True)
    assert metadata.stress.summary.worst_perturbation["specificity"] == "lung_crop@5"
    assert metadata.stress.perturbations["zoom_in@5"].value("specificity") == pytest.approx(
        0.7254901960784313
    )
    assert metadata.calibration.scale == pytest.approx(1.0192800576453724)
    assert metadata.input_gate.fitted_on == 3000 and metadata.input_gate.file.endswith(".npz")


def test_a_fresh_stress_report_round_trips_with_its_nulls() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 20)
    logits = {"clean": rng.normal(size=40) + 2 * labels, "pixelate@5": rng.normal(size=40)}
    report = json.loads(json.dumps(stress_report(labels, logits, 0.5, n_resamples=20)))
    typed = StressReport.from_dict({**report, "model": "m.keras", "n": 40})
    assert typed.to_dict() == {**report, "model": "m.keras", "n": 40}
    assert typed.extra == {"model": "m.keras", "n": 40}
    one_class = stress_report([1, 1, 1], {"clean": np.array([1.0, 2.0, 3.0])}, 0.5, 10)
    one_class = json.loads(json.dumps(one_class))
    assert one_class["clean"]["roc_auc"] is None
    assert StressReport.from_dict(one_class).to_dict() == one_class


def test_older_sections_still_load() -> None:
    suite_v1 = {
        "threshold": 0.5,
        "clean": {"specificity": 0.9, "sensitivity": 0.95},
        "perturbations": {"blur": {"specificity": 0.6, "flip_rate": 0.1}},
        "summary": {"worst": {"specificity": 0.6}, "worst_perturbation": {"specificity": "blur"}},
    }
    metadata = ModelMetadata.from_dict(
        {**BASE, "stress": suite_v1, "calibration": {"method": "none", "ece": {"clean": 0.1}},
         "input_gate": {"file": "tiny.gate.npz", "version": 1}}
    )  # fmt: skip
    assert metadata.stress.summary.worst_held_out == {} == metadata.stress.summary.medmnist_c
    assert [row["perturbation"] for row in stress_rows(metadata)] == ["clean", "blur"]
    assert metadata.calibration.ece == {"clean": 0.1} and metadata.calibration.ece_after is None
    assert metadata.calibration.to_dict() == {"method": "none", "ece": {"clean": 0.1}}
    assert metadata.input_gate.to_dict() == {"file": "tiny.gate.npz", "version": 1}
    lines = robustness_lines(metadata)
    assert "Stress suite worst case: specificity 0.600 (blur)." in lines
    assert not any(line.startswith(("Worst case over", "Calibration")) for line in lines)


def test_keys_a_section_does_not_name_are_kept() -> None:
    entry = {"method": "platt", "scale": 1, "bias": -0.5, "refit": {"when": "later"}}
    metadata = ModelMetadata.from_dict(
        {**BASE, "calibration": entry, "stress": {"clean": {"odd": "text", "n": 3}}}
    )
    assert metadata.calibration.extra == {"refit": {"when": "later"}}
    assert metadata.calibration.to_dict() == entry
    assert metadata.stress.clean == SuiteMetrics({"n": 3}, extra={"odd": "text"})
    assert metadata.stress.perturbations == {} and stress_rows(metadata) == []


def test_save_gate_writes_the_entry_the_sidecar_reads(tmp_path: Path) -> None:
    gate = input_check.InputGate(np.zeros(2), np.eye(2), 3.5, 40)
    entry = input_check.save_gate(gate, tmp_path / "m.gate.npz")
    typed = ModelMetadata.from_dict({**BASE, "input_gate": entry}).input_gate
    assert (typed.file, typed.version, typed.threshold, typed.fitted_on) == (
        "m.gate.npz",
        1,
        3.5,
        40,
    )
    assert typed.to_dict() == entry


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ({"stress": [1]}, "stress must be"),
        ({"stress": {"clean": [1]}}, "clean must be"),
        ({"stress": {"clean": {"roc_auc": "high"}}}, "roc_auc must be"),
        ({"stress": {"clean": {"ci": {"ece": [0.1]}}}}, "ci must be"),
        ({"stress": {"clean": {"confusion_matrix": {"tp": -1}}}}, "tp must be"),
        ({"stress": {"perturbations": {"blur": 5}}}, "blur must hold"),
        ({"stress": {"summary": {"worst": {"ece": "bad"}}}}, "worst must be"),
        ({"stress": {"summary": {"worst_perturbation": {"ece": 1}}}}, "worst_perturbation"),
        ({"stress": {"threshold": "abc"}}, "threshold must be"),
        ({"calibration": {"scale": "x"}}, "scale must be"),
        ({"calibration": {"ece_after": {"clean": "low"}}}, "ece_after must be"),
        ({"calibration": "platt"}, "calibration must be"),
        ({"input_gate": {"threshold": "x"}}, "threshold must be"),
        ({"input_gate": {"version": "one"}}, "version must be"),
        ({"input_gate": {"figures": 3}}, "figures must be"),
    ],
)
def test_a_wrongly_shaped_report_is_a_model_load_error_naming_its_key(entries, reason) -> None:
    with pytest.raises(ModelLoadError, match=reason):
        ModelMetadata.from_dict({**BASE, **entries})


def test_a_stress_report_checked_outside_a_sidecar_raises_the_error_asked_for() -> None:
    with pytest.raises(DataError, match="my report: clean must be"):
        StressReport.from_dict({"clean": 1}, "my report", DataError)

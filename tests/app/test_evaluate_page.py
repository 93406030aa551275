"""AppTest checks of the Evaluate page: whole split, small-set warning, prevalence, Grad-CAM."""
# ruff: noqa: F811 - pytest fixtures imported from test_app_pages are redefined as arguments

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from cxr_core.data import tables as data
from cxr_core.evaluation.eval_sets import evaluation_sets
from cxr_core.sidecar import check_model_file
from tests.app.test_app_pages import APP, TIMEOUT, all_text, app_env, open_page  # noqa: F401


def metric(at: AppTest, label: str) -> float:
    return float(next(m.value for m in at.metric if m.label == label))


def open_on(split: str) -> AppTest:
    """Open the Evaluate page with ``split`` already chosen (nothing else is scored first)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["eval_set"] = split
    at.run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception, at.exception
    return at


def test_evaluate_scores_the_whole_split_by_default_and_samples_by_class_ratio(
    app_env, tiny_model_dir, tiny_dataset
):
    metadata = check_model_file(tiny_model_dir / "tiny.keras")
    whole = evaluation_sets(data.scan(tiny_dataset), metadata)[0].table
    at = open_page("pages/evaluate.py")
    assert at.selectbox(key="eval_set").value == "validation"
    n_positive = int(whole["label_index"].sum())
    assert f"{len(whole)} images ({n_positive} PNEUMONIA, prevalence" in all_text(at)
    assert "stratified sample" not in all_text(at)
    assert list((app_env / ".cache" / "scores").glob("scores-*.npz"))  # kept for a restart
    at.selectbox(key="eval_set").set_value("train").run()
    assert "24 images (12 PNEUMONIA, prevalence 0.500)." in all_text(at)
    at.sidebar.number_input[0].set_value(10).run()  # a sample for speed keeps the class ratio
    assert not at.exception, at.exception
    assert "10 images (5 PNEUMONIA, prevalence 0.500), a stratified sample of 24" in all_text(at)


def test_evaluate_prevalence_input_moves_ppv_and_npv_by_bayes_rule(app_env):
    # The untrained tiny model scores every image about 0.5, so the extreme thresholds give
    # sensitivity 1 / specificity 0 and back, where Bayes' rule has a plain answer
    # (tests/test_operating_point.py checks the general case on generated scores).
    at = open_on("train")  # 24 images, half PNEUMONIA
    prevalence = next(n for n in at.number_input if n.label.startswith("Prevalence"))
    assert prevalence.value == pytest.approx(0.5)
    at.slider[0].set_value(0.0).run()  # everything PNEUMONIA: PPV is the prevalence
    assert (metric(at, "Sensitivity"), metric(at, "PPV")) == (1.0, 0.5)
    prevalence.set_value(0.1).run()
    assert not at.exception, at.exception
    assert metric(at, "PPV") == 0.1
    assert "PPV and NPV at a prevalence of 0.100" in all_text(at)
    assert "own share of PNEUMONIA is 0.500" in all_text(at)
    at.slider[0].set_value(1.0).run()  # everything NORMAL: NPV is 1 - prevalence
    assert (metric(at, "Specificity"), metric(at, "NPV")) == (1.0, 0.9)


def test_evaluate_small_split_warns_of_noise_and_a_gallery_button_opens_grad_cam(app_env):
    at = open_on("val")  # the tiny dataset's val split: 8 images
    warning = next(w.value for w in at.warning if "mostly noise" in w.value)
    assert warning.startswith("Only 8 images (4 PNEUMONIA): these figures are mostly noise.")
    assert re.search(r"sensitivity \d\.\d\d-\d\.\d\d \(width \d\.\d\d\)", warning)
    assert "ROC AUC" in warning
    intervals = [c.value for c in at.caption if c.value.startswith("95% CI")]
    assert any(i.endswith("(Wilson)") for i in intervals)
    assert any(i.endswith("(bootstrap)") for i in intervals)

    buttons = [b for b in at.button if b.label == "Grad-CAM"]
    assert len(buttons) == 8  # one under each thumbnail of the 8 images
    buttons[0].click().run()
    assert not at.exception, at.exception
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert "Grad-CAM overlay" in captions and "Original" in captions
    text = all_text(at)
    assert "model output" in text and "probability of pneumonia" in text and "threshold" in text
    assert "not a diagnostic device" in text
    next(b for b in at.button if b.label == "Close").click().run()
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert "Grad-CAM overlay" not in captions


def _heat_page() -> None:
    """Draw the stress section of a sidecar holding a small suite v2 report."""
    from cxr_app import evaluate as app_evaluate
    from cxr_core.sidecar import ModelMetadata

    def metrics(specificity: float) -> dict:
        return {"roc_auc": 0.9, "sensitivity": 0.95, "specificity": specificity, "ece": 0.05,
                "accuracy": 0.9, "flip_rate": 0.1, "balanced_error": 0.1, "n": 10}  # fmt: skip

    stress = {
        "threshold": 0.5,
        "clean": metrics(0.9),
        "perturbations": {
            "pixelate@1": metrics(0.8),
            "pixelate@5": metrics(0.31),
            "markers@3": metrics(0.7),
        },  # fmt: skip
        "summary": {
            "worst": {"specificity": 0.31},
            "mean": {"specificity": 0.6},
            "worst_perturbation": {"specificity": "pixelate@5"},
        },  # fmt: skip
    }
    metadata = ModelMetadata.from_dict({"backbone": "small_cnn", "image_size": 64,
                                        "threshold": 0.5, "stress": stress})  # fmt: skip
    app_evaluate.stress_section(metadata)


def test_evaluate_shows_the_stress_suite_as_a_corruption_by_severity_heat_table():
    at = AppTest.from_function(_heat_page, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table.index) == ["pixelate", "markers (held out)"]
    assert list(table.columns) == ["Clean", *(f"Severity {s}" for s in range(1, 6))]
    assert table.loc["pixelate", "Severity 5"] == pytest.approx(0.31)
    assert "Stress suite worst case: specificity 0.310 (pixelate@5)" in " ".join(
        t.value for t in at.text
    )
    at.radio(key="eval_heat").set_value("roc_auc").run()
    assert at.dataframe[0].value.loc["pixelate", "Severity 1"] == pytest.approx(0.9)

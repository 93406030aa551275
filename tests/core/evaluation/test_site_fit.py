"""Site fitting: cross-fitted figures, the calibrate command and what it writes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxr_core.cli import main
from cxr_core.errors import DataError
from cxr_core.evaluation import site_fit
from cxr_core.stats.calibration import PlattScaling
from cxr_core.stats.conformal import fit_conformal
from tests.conftest import synthetic_xray


def shifted_site(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A site whose healthy children score high: the model ranks, its level is off by +2."""
    y = (rng.random(n) < 0.6).astype(int)
    return y, rng.normal(np.where(y == 1, 4.0, 0.5), 1.2)


def test_cross_fitting_fixes_a_shifted_operating_point() -> None:
    y, z = shifted_site(300, np.random.default_rng(0))
    before = site_fit.site_figures(y, 1 / (1 + np.exp(-z)), (z >= 0).astype(int), n_resamples=0)
    crossed = site_fit.cross_fit(y, z, folds=5)
    after = site_fit.site_figures(y, crossed.probabilities, crossed.verdicts, crossed.sets)
    assert before["specificity"].value < 0.4
    assert after["specificity"].value > 0.7 and after["sensitivity"].value >= 0.85
    assert after["ece"].value < before["ece"].value
    assert after["coverage"].value >= 0.9
    assert after["accuracy"].low < after["accuracy"].value < after["accuracy"].high


@dataclass(frozen=True)
class _Memorising(site_fit.SiteFit):
    """A 'fit' that is perfect on the images it saw and knows nothing about the others."""

    seen: dict[float, int] = field(default_factory=dict)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return np.array([self.seen.get(float(z), 0.5) for z in np.ravel(logits)], float)


def _memorise(labels: np.ndarray, logits: np.ndarray) -> site_fit.SiteFit:
    sets = fit_conformal(np.array([0, 1] * 10), np.linspace(0, 1, 20))
    seen = {float(z): float(y) for z, y in zip(logits, labels, strict=True)}
    return _Memorising(PlattScaling(1.0, 0.0), 0.75, sets, seen)


def test_cross_fitted_figures_never_score_an_image_with_a_fit_that_saw_it() -> None:
    rng = np.random.default_rng(1)
    y, z = (rng.random(200) < 0.5).astype(int), rng.normal(0, 1, 200)
    crossed = site_fit.cross_fit(y, z, folds=5, fit=_memorise)
    # Scored by a fit that had seen them, every image would get its own label (accuracy 1).
    assert np.all(crossed.probabilities == 0.5)
    assert site_fit.site_figures(y, crossed.probabilities, crossed.verdicts)["accuracy"].value < 0.7


def test_folds_keep_each_patient_on_one_side() -> None:
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(60), 2)
    y = np.repeat((rng.random(60) < 0.5).astype(int), 2)
    crossed = site_fit.cross_fit(y, rng.normal(y, 1.0), groups, folds=4)
    for patient in range(60):
        assert len(set(crossed.fold[groups == patient])) == 1


def test_too_few_site_images_say_how_many_are_needed() -> None:
    with pytest.raises(DataError, match="at least 40 labelled images with at least 10"):
        site_fit.check_site_size(np.array([0] * 9 + [1] * 40))
    site_fit.check_site_size(np.array([0] * 10 + [1] * 30))


def test_temperature_scaling_has_no_intercept() -> None:
    y, z = shifted_site(300, np.random.default_rng(3))
    assert site_fit.fit_temperature(y, z).bias == 0.0
    assert site_fit.fit_site(y, z, method="platt").scaling.bias < -1.0  # absorbs the shift


# ---------------------------------------------------------------------------------------------
# python -m cxr_core calibrate


def make_site(root: Path, normal: int, pneumonia: int, seed: int = 0) -> Path:
    """A Kaggle-layout ``test`` split of generated X-rays, two images per patient."""
    rng = np.random.default_rng(seed)
    for label, count in (("NORMAL", normal), ("PNEUMONIA", pneumonia)):
        folder = root / "test" / label
        folder.mkdir(parents=True)
        for i in range(count):
            name = (
                f"IM-{i // 2:04d}-0001-000{i % 2 + 1}.png"
                if label == "NORMAL"
                else f"person{i // 2}_bacteria_{i}.png"
            )
            Image.fromarray(synthetic_xray(int(label == "PNEUMONIA"), rng)).save(folder / name)
    return root


@pytest.fixture(scope="module")
def ranking_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model that ranks generated X-rays (see :func:`build_ranking_model`)."""
    return build_ranking_model(tmp_path_factory.mktemp("ranking"))


def build_ranking_model(folder: Path, name: str = "ranking") -> Path:
    """A 64 px small_cnn whose logit layer is a ridge logistic regression on its pooled
    features of generated X-rays: it ranks, and its probabilities are not calibrated."""
    from sklearn.linear_model import LogisticRegression

    from cxr_core.config import ModelConfig
    from cxr_core.data import tables as data
    from cxr_core.inference.input_check import table_features
    from cxr_core.model.build import build_model, save_model

    keras_model = build_model(ModelConfig(backbone="small_cnn", weights="none", image_size=64))
    table = data.scan(make_site(folder / "fit", 30, 30, seed=5))
    features = table_features(keras_model, table, 64)
    regression = LogisticRegression(C=0.05, max_iter=2000).fit(features, table["label_index"])
    keras_model.get_layer("logit").set_weights(
        [regression.coef_.T.astype("float32"), regression.intercept_.astype("float32") + 2.0]
    )
    return save_model(
        keras_model,
        folder / f"{name}.keras",
        {
            "backbone": "small_cnn",
            "image_size": 64,
            "threshold": 0.5,
            "threshold_rule": "youden",
            "last_conv_layer": "last_conv",
        },
    )


def _digest(paths: list[Path]) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_calibrate_writes_a_folded_copy_and_leaves_the_original_alone(
    ranking_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cxr_core.data import tables as data
    from cxr_core.evaluation.model_card import render_model_card
    from cxr_core.evaluation.site_calibrate import site_logits
    from cxr_core.model.build import load_model, read_metadata

    site = make_site(tmp_path / "hospital_b", 24, 36, seed=7)
    originals = [ranking_model, ranking_model.with_suffix(".json")]
    before = _digest(originals)
    out = tmp_path / "fitted.keras"
    argv = ["calibrate", "--model", str(ranking_model), "--data", str(site), "--split", "test",
            "--out", str(out), "--json"]  # fmt: skip
    assert main(argv) == 0
    section = json.loads(capsys.readouterr().out)
    assert _digest(originals) == before
    metadata = read_metadata(out)
    fitted = metadata.site_calibration
    assert fitted.site == "hospital_b" and (fitted.n_normal, fitted.n_pneumonia) == (24, 36)
    assert section["threshold"] == metadata.threshold == fitted.threshold
    assert fitted.prevalence == pytest.approx(0.6)
    assert metadata.conformal is not None and metadata.conformal.n_normal == 24
    assert {"accuracy", "sensitivity", "specificity", "ece", "coverage"} <= set(fitted.after)
    assert all(f.low is not None and f.low <= f.value <= f.high for f in fitted.after.values())
    card = render_model_card(metadata)
    assert "## Fitted to a site" in card and "| specificity |" in card
    assert "## Uncertain answers" in card and "the site's images" in card
    table = data.scan(site)
    original, _ = load_model(ranking_model)
    new, _ = load_model(out)
    z_old, z_new = site_logits(original, table, 64), site_logits(new, table, 64)
    np.testing.assert_allclose(z_new, fitted.scale * z_old + fitted.bias, rtol=1e-4, atol=1e-4)


def test_calibrate_with_too_few_images_exits_2_with_one_line(
    ranking_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "small", 8, 30)
    out = tmp_path / "fitted.keras"
    assert main(["calibrate", "--model", str(ranking_model), "--data", str(site),
                 "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "at least 40" in err[0]
    assert not out.exists()


def test_a_suite_threshold_rule_becomes_its_clean_counterpart_at_a_site() -> None:
    from cxr_core.evaluation.site_calibrate import threshold_rule
    from cxr_core.sidecar import read_metadata

    bundled = Path(__file__).resolve().parents[3] / "assets" / "models" / "cxr_lite0.keras"
    metadata = read_metadata(bundled)
    assert metadata.recipe.train.threshold_rule == "worst_sensitivity"
    assert threshold_rule(metadata) == ("sensitivity", metadata.recipe.train.target_sensitivity)

"""Deletion and insertion curves (Petsiuk et al. 2018) for heatmaps against a random map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxr_core.data import tables as data
from cxr_core.errors import ConfigError, DataError
from cxr_core.evaluation.faithfulness import (
    FaithfulnessResult,
    faithfulness_check,
    ordered_variants,
)
from cxr_core.inference.predictor import Predictor
from tests.app.test_app_pages import app_env

__all__ = ["app_env"]  # a fixture used here, defined in test_app_pages


def test_deletion_removes_the_top_ranked_pixels_first_and_insertion_restores_them() -> None:
    image = np.full((16, 16), 200.0, np.float32)
    saliency = np.zeros((16, 16), np.float32)
    saliency[:4] = 1.0  # the top quarter ranks first
    variants = ordered_variants(image, saliency, steps=4, rng=np.random.default_rng(0))
    deletion, insertion = variants["deletion"], variants["insertion"]
    assert deletion.shape == insertion.shape == (5, 16, 16)
    np.testing.assert_array_equal(deletion[0], image)
    assert (deletion[1][:4] == 0).all() and (deletion[1][4:] == 200).all()
    assert (deletion[-1] == 0).all()
    np.testing.assert_array_equal(insertion[-1], image)
    assert (insertion[1][:4] == 200).all()


def result_with(deletion: dict[str, float], insertion: dict[str, float]) -> FaithfulnessResult:
    """Curves that fall (deletion) or rise (insertion) linearly to the given end values."""
    fractions = np.linspace(0, 1, 11)
    curves = {
        m: {
            "deletion": np.vstack([1 - (1 - deletion[m]) * fractions] * 2),
            "insertion": np.vstack([insertion[m] * fractions] * 2),
        }
        for m in deletion
    }
    return FaithfulnessResult(fractions, curves, ("a.png", "b.png"))


def test_areas_and_the_comparison_with_random() -> None:
    result = result_with(
        {"gradcam": 0.0, "gradcam++": 0.8, "random": 0.6},
        {"gradcam": 1.0, "gradcam++": 1.0, "random": 0.4},
    )
    assert result.area("gradcam", "deletion") == pytest.approx(0.5)
    assert result.area("random", "insertion") == pytest.approx(0.2)
    assert result.beats_random("gradcam")
    assert not result.beats_random("gradcam++")  # inserts faster but deletes slower
    rows = {row["map"]: row for row in result.table()}
    assert rows["gradcam"]["insertion - deletion"] == pytest.approx(0.0)


def test_the_check_runs_on_real_files_with_one_curve_per_image(tiny_dataset, tiny_model_dir):
    predictor = Predictor.from_path(tiny_model_dir / "tiny.keras")
    paths = list(data.scan(tiny_dataset)["path"][:3])
    seen = []
    result = faithfulness_check(predictor, paths, steps=4, progress=lambda d, t: seen.append(d))
    assert seen == [1, 2, 3] and result.files == tuple(Path(p).name for p in paths)
    for curves in result.curves.values():
        for values in curves.values():
            assert values.shape == (3, 5) and ((values >= 0) & (values <= 1)).all()
    # Every curve of one image starts (deletion) or ends (insertion) at its own score.
    start = result.curves["gradcam"]["deletion"][:, 0]
    for method in result.curves:
        np.testing.assert_allclose(result.curves[method]["deletion"][:, 0], start, atol=1e-6)
        np.testing.assert_allclose(result.curves[method]["insertion"][:, -1], start, atol=1e-6)


def test_bad_settings_and_files_are_refused(tiny_model_dir, tmp_path) -> None:
    predictor = Predictor.from_path(tiny_model_dir / "tiny.keras")
    with pytest.raises(ConfigError, match="steps"):
        faithfulness_check(predictor, ["x.png"], steps=1)
    with pytest.raises(DataError, match="no images"):
        faithfulness_check(predictor, [])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.png"):
        faithfulness_check(predictor, [str(bad)])


def test_the_evaluate_page_runs_the_check_on_demand(app_env) -> None:
    from tests.app.test_app_pages import open_page

    at = open_page("pages/evaluate.py")
    assert not any("deletion AUC" in str(d.value.columns) for d in at.dataframe)
    at.number_input(key="faith_n").set_value(4).run()
    next(b for b in at.button if b.label == "Run the faithfulness check").click().run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "map" in d.value.columns)
    assert table["map"].tolist() == ["Grad-CAM", "Grad-CAM++", "random map"]
    assert any("the random map" in t.value for t in at.text)

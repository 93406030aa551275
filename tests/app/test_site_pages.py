"""AppTest checks of issue 16 on the pages: Home's headline, UNCERTAIN on Diagnose, the fit
button on Evaluate (and that a visitor of a shared deployment cannot use it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxr_core.evaluation.card_sections import HEADLINE_COLUMNS
from tests.app.test_app_pages import all_text, open_page, png_bytes
from tests.app_helpers import make_tiny_model, point_app_at
from tests.core.evaluation.test_site_fit import build_ranking_model, make_site


def _add_to_sidecar(model: Path, **entries) -> None:
    sidecar = model.with_suffix(".json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), **entries}))


RECORD = {
    "date": "2026-12-03",
    "model": "tiny test model",
    "threshold": 0.5,
    "population": "official test split children",
    "n": 624,
    "setting": "at the stored threshold",
    "figures": {"sensitivity": 0.977, "specificity": 0.739, "ece": 0.162},
}
FITTED_RECORD = {**RECORD, "n": 574, "setting": "after site fitting on 50 local children"}
FITTED_RECORD["figures"] = {"sensitivity": 0.914, "specificity": 0.904, "ece": 0.05}


@pytest.fixture
def models(tmp_path: Path, tiny_dataset: Path) -> Path:
    folder = tmp_path / "models"
    model = make_tiny_model(folder, tiny_dataset)
    _add_to_sidecar(
        model,
        independent_checks=[RECORD, FITTED_RECORD, "An older free-text note."],
        # Bounds that make every answer UNCERTAIN: both classes always plausible.
        conformal={"coverage": 0.95, "normal_max": None, "pneumonia_min": None,
                   "n_normal": 5, "n_pneumonia": 5, "fitted_on": "test images"},
    )  # fmt: skip
    return folder


def test_home_leads_with_the_independent_records_in_a_plain_table(
    monkeypatch, tmp_path, models, tiny_dataset
):
    point_app_at(monkeypatch, models, tmp_path / "runs", tiny_dataset)
    at = open_page("pages/home.py")
    table = at.dataframe[0].value
    assert list(table.columns) == list(HEADLINE_COLUMNS)
    assert list(table["Specificity"]) == ["0.739", "0.904"]
    assert table["Model (threshold)"][0] == "tiny test model (0.500)"
    text = all_text(at)
    assert at.subheader[0].value == "How the model does on patients it never saw"  # first
    assert "Validation figures (**flattering**" in text
    assert "Earlier note: An older free-text note." in text
    assert len(at.get("plotly_chart")) == 1  # validation vs new patients vs after fitting


def test_home_says_when_the_records_describe_another_threshold(
    monkeypatch, tmp_path, models, tiny_dataset
):
    _add_to_sidecar(models / "tiny.keras", threshold=0.7)
    point_app_at(monkeypatch, models, tmp_path / "runs", tiny_dataset)
    texts = [t.value for t in open_page("pages/home.py").text]
    assert any("measured for a model at threshold 0.500" in t and "0.700" in t for t in texts)


def test_diagnose_shows_uncertain_as_its_own_neutral_verdict(
    monkeypatch, tmp_path, models, tiny_dataset
):
    point_app_at(monkeypatch, models, tmp_path / "runs", tiny_dataset)
    at = open_page("pages/diagnose.py")
    rng = np.random.default_rng(0)
    files = [
        (f"x{i}.png", png_bytes(rng.integers(0, 255, (80, 96), dtype=np.uint8)), "image/png")
        for i in range(2)
    ]
    at.file_uploader[0].set_value(files).run()
    assert not at.exception, at.exception
    headings = [m.value for m in at.markdown if "model output" in m.value]
    assert len(headings) == 2 and all(":gray[● **UNCERTAIN**]" in h for h in headings)
    assert not any(":red[" in h or ":green[" in h for h in headings)
    infos = [i.value for i in at.info]
    assert any("a clinician should read this film" in i for i in infos)
    assert list(at.dataframe[0].value["Model output"]) == ["UNCERTAIN", "UNCERTAIN"]


@pytest.fixture
def site_env(monkeypatch, tmp_path) -> tuple[Path, Path]:
    models = tmp_path / "models"
    models.mkdir()
    build_ranking_model(models)
    site = make_site(tmp_path / "hospital_b", 24, 36, seed=7)
    runs = tmp_path / "runs"
    point_app_at(monkeypatch, models, runs, site)
    return runs, site


def test_the_fit_button_writes_a_fitted_model_the_picker_lists(site_env):
    runs, _ = site_env
    at = open_page("pages/evaluate.py")
    at.button(key="fit_site").click().run()
    assert not at.exception, at.exception
    text = all_text(at)
    assert "ranking - fitted to hospital_b" in text
    table = at.dataframe[-1].value
    assert list(table.columns)[1:] == ["Before (original model)",
                                       "After fitting (out-of-fold, 95% CI)"]  # fmt: skip
    assert {"accuracy", "sensitivity", "specificity", "ece", "coverage"} <= set(table["Figure"])
    written = list((runs / "fitted").glob("*.keras"))
    assert [p.name for p in written] == ["ranking-fitted-hospital_b.keras"]
    at.run()
    labels = at.sidebar.selectbox(key="model_picker").options
    assert labels == ["ranking - bundled", "ranking - fitted to hospital_b"]


def test_a_visitor_of_a_shared_deployment_cannot_fit(site_env, monkeypatch):
    monkeypatch.setenv("CXR_ADMIN_PASSWORD", "secret passphrase")
    at = open_page("pages/evaluate.py")
    assert "Only the administrator may fit models on this server." in all_text(at)
    assert not [b for b in at.button if b.key == "fit_site"]

"""A clinician's say on each verdict: saved in Kaggle layout, no patient fields, who may."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxr_core.data import tables as data
from cxr_core.data.feedback import safe_name, save_feedback
from cxr_core.errors import ConfigError
from cxr_core.runs.files import read_json
from tests.app.test_app_pages import all_text, app_env, open_page, png_bytes
from tests.conftest import synthetic_xray

__all__ = ["app_env"]  # a fixture used here, defined in test_app_pages

PAGE = "pages/diagnose.py"


def pixels(seed: int = 0) -> np.ndarray:
    return synthetic_xray(1, np.random.default_rng(seed), 96)


def save(folder: Path, label: str, name: str = "a.png", seed: int = 0):
    return save_feedback(folder, pixels(seed), label, model_output="NORMAL", probability=0.2,
                         model="cxr_lite0", file_name=name)  # fmt: skip


def test_an_answer_lands_in_kaggle_layout_that_scan_reads(tmp_path: Path) -> None:
    record = save(tmp_path, "PNEUMONIA")
    image = tmp_path / "train" / "PNEUMONIA" / f"{record.image_id}.png"
    assert np.array_equal(np.asarray(Image.open(image)), pixels())
    save(tmp_path, "NORMAL", seed=1)  # a dataset needs both classes
    table = data.scan(tmp_path)
    assert table["label"].tolist() == ["NORMAL", "PNEUMONIA"]
    assert set(table["split"]) == {"train"}
    stored = read_json(tmp_path / "records" / f"{record.image_id}.json")
    assert stored["label"] == "PNEUMONIA" and stored["agreed"] is False
    assert stored["model_output"] == "NORMAL" and stored["file_name"] == "a.png"


def test_a_changed_answer_moves_the_image_instead_of_copying_it(tmp_path: Path) -> None:
    first = save(tmp_path, "PNEUMONIA")
    second = save(tmp_path, "NORMAL")
    assert first.image_id == second.image_id and second.agreed
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")) == [
        f"train/NORMAL/{first.image_id}.png"
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("../../etc/passwd", "passwd"), ("C:\\x\\scan 1.png", "scan_1.png"), ("..", "image"),
     ("<b>x</b>.png", "b_.png"), ("a" * 200 + ".png", "a" * 80)],
)  # fmt: skip
def test_file_names_are_sanitised(name: str, expected: str) -> None:
    assert safe_name(name) == expected


def test_the_saved_image_carries_no_metadata_and_the_label_is_checked(tmp_path: Path) -> None:
    record = save(tmp_path, "NORMAL", name="Doe^John.dcm")
    image = Image.open(tmp_path / "train" / "NORMAL" / f"{record.image_id}.png")
    assert not image.info.get("exif") and not getattr(image, "text", {})
    assert b"Doe" not in (tmp_path / "train" / "NORMAL" / f"{record.image_id}.png").read_bytes()
    with pytest.raises(ConfigError, match="label"):
        save(tmp_path, "MAYBE")


def test_diagnose_saves_agree_and_correction_where_the_administrator_allows(
    app_env, monkeypatch, tmp_path
) -> None:
    folder = tmp_path / "feedback"
    monkeypatch.setenv("CXR_FEEDBACK_DIR", str(folder))
    at = open_page(PAGE)
    at.file_uploader[0].set_value(("scan.png", png_bytes(pixels(5)), "image/png")).run()
    assert not at.exception, at.exception
    output = next(b.label for b in at.button if b.label.startswith("Agree: ")).split(": ")[1]
    other = "PNEUMONIA" if output == "NORMAL" else "NORMAL"
    next(b for b in at.button if b.label == f"The right answer is {other}").click().run()
    assert not at.exception, at.exception
    assert [p.parent.name for p in folder.rglob("*.png")] == [other]
    assert "Your answer: " + other in all_text(at)
    assert str(folder) not in all_text(at)  # no server path shown


def test_feedback_is_off_without_a_folder_and_for_visitors(app_env, monkeypatch, tmp_path):
    at = open_page(PAGE)
    at.file_uploader[0].set_value(("scan.png", png_bytes(pixels(6)), "image/png")).run()
    assert not any(b.label.startswith("Agree") for b in at.button)
    monkeypatch.setenv("CXR_FEEDBACK_DIR", str(tmp_path / "fb"))
    monkeypatch.setenv("CXR_ADMIN_PASSWORD", "secret")
    at = open_page(PAGE)
    at.file_uploader[0].set_value(("scan.png", png_bytes(pixels(6)), "image/png")).run()
    assert not any(b.label.startswith("Agree") for b in at.button)
    monkeypatch.setenv("CXR_VISITOR_FEEDBACK", "1")
    at = open_page(PAGE)
    at.file_uploader[0].set_value(("scan.png", png_bytes(pixels(6)), "image/png")).run()
    assert any(b.label.startswith("Agree") for b in at.button)

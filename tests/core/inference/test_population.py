"""Population check: three grades from feature distances, DICOM ages, the refusal sentence."""

from __future__ import annotations

import numpy as np
import pytest

from cxr_core.imaging.decode import read_image
from cxr_core.inference import input_check as gate
from cxr_core.inference import population
from cxr_core.inference.input_check import InputCheck
from tests.core.imaging.test_imaging import dicom_bytes


def test_grades_follow_the_two_thresholds_on_generated_features() -> None:
    rng = np.random.default_rng(0)
    train, val = rng.normal(0, 1, (500, 8)), rng.normal(0, 1, (300, 8))
    fitted = gate.fit_gate(train, val)
    unusual = population.choose_unusual_threshold(fitted.distances(val), 0.95)
    assert unusual < fitted.threshold
    new = rng.normal(0, 1, (2000, 8))
    grades = [fitted.check(f, unusual).grade for f in new]
    assert 0.02 <= grades.count("unusual") / len(new) <= 0.09
    shifted = fitted.check(np.full(8, 1.6), unusual)  # farther than most, not absurdly far
    assert shifted.accepted and shifted.grade == "unusual"
    assert shifted.warning == population.UNUSUAL_WARNING
    far = fitted.check(np.full(8, 8.0), unusual)
    assert (far.accepted, far.grade, far.reason) == (False, "refused", gate.NOT_A_CHEST_XRAY)
    plain = fitted.check(np.zeros(8), unusual)
    assert (plain.grade, plain.warning) == ("typical", None)


def test_grade_shares_add_up_and_count_pixel_refusals() -> None:
    shares = population.grade_shares(np.array([1.0, 2.0, 3.0, 9.0]), 2.5, 5.0, refused_anyway=1)
    assert shares == {"typical": 0.4, "unusual": 0.2, "refused": 0.4}


def test_refusal_sentence_says_unlike_the_training_x_rays_not_that_it_is_no_x_ray() -> None:
    sentence = gate.NOT_A_CHEST_XRAY
    assert "unlike the chest X-rays the model was trained on" in sentence
    assert "does not look like" not in sentence and "not a chest X-ray" not in sentence


@pytest.mark.parametrize(
    ("age", "birth", "study", "years"),
    [
        ("003Y", None, None, 3.0),
        ("018M", None, None, 1.5),
        ("045Y", None, None, 45.0),
        (None, "20200101", "20230701", 3.5),
        (None, "20200101", None, None),  # no study date: the age is unknown
        ("abc", None, None, None),
    ],
)
def test_age_in_years_from_a_dicom_header(age, birth, study, years) -> None:
    result = population.age_in_years(age, birth, study)
    assert result == (None if years is None else pytest.approx(years, abs=0.01))


def test_ages_outside_one_to_five_are_flagged_and_unknown_ones_are_not() -> None:
    flags = [population.outside_training_ages(a) for a in (None, 0.5, 1.0, 5.9, 6.0, 40.0)]
    assert flags == [False, True, False, False, True, True]


def _dicom_with(**fields: str) -> bytes:
    frames = np.random.default_rng(0).integers(0, 4096, (64, 96))
    return dicom_bytes(frames, **fields)


def test_an_adult_dicom_is_graded_unusual_and_its_age_is_not_kept() -> None:
    # The helper's birth date is 1980: with a study date that alone says adult.
    decoded = read_image(_dicom_with(StudyDate="20240101"), filename="adult.dcm")
    assert population.AGE_FIELD in decoded.info
    assert not any("1980" in str(v) or "2024" in str(v) for v in decoded.info.values())
    check = population.with_age_check(InputCheck(True), decoded.info)
    assert (check.grade, check.warning) == ("unusual", population.UNUSUAL_AGE)
    child = read_image(_dicom_with(PatientAge="003Y", StudyDate="20240101"), filename="c.dcm")
    assert population.AGE_FIELD not in child.info
    assert population.with_age_check(InputCheck(True), child.info).grade == "typical"

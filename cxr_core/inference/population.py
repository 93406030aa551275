"""Is this X-ray from the model's population? Three grades: typical, unusual, refused.

The model learnt from children aged 1-5 at one hospital in Guangzhou. An adult film or an
X-ray from another scanner may pass the input check (:mod:`cxr_core.inference.input_check`) and
still get a
verdict the model cannot back: in an independent check 11 of 16 healthy adults were called
PNEUMONIA, although the feature distance separated adults from the test children well (ROC AUC
0.97). So the distance is graded:

- ``typical``: at most the ``unusual`` threshold (a high quantile of the clean validation
  distances): the verdict is shown plainly;
- ``unusual``: above it but at most the refusal threshold: the verdict is shown with
  :data:`UNUSUAL_WARNING`;
- ``refused``: above the refusal threshold (or a pixel check failed): no verdict.

A DICOM whose ``PatientAge`` or ``PatientBirthDate`` (against ``StudyDate``) puts the patient
outside the training ages is ``unusual`` too. Only the comparison is kept, never the age.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

# Re-exported: the DICOM age helpers live beside the decoder that reads the header.
from cxr_core.imaging.patient_age import (
    AGE_FIELD,
    TRAINING_AGES,
    age_in_years,
    outside_training_ages,
)

if TYPE_CHECKING:  # gate imports this module
    from cxr_core.inference.input_check import InputCheck

__all__ = [
    "AGE_FIELD",
    "GRADES",
    "TRAINING_AGES",
    "UNUSUAL_AGE",
    "UNUSUAL_WARNING",
    "age_in_years",
    "choose_unusual_threshold",
    "grade",
    "grade_shares",
    "outside_training_ages",
    "with_age_check",
]

#: The grades, from best to worst.
GRADES = ("typical", "unusual", "refused")
#: What an ``unusual`` verdict is shown with.
UNUSUAL_WARNING = (
    "This X-ray is unlike the training images (children aged 1-5 from one hospital), so this "
    "verdict is less reliable."
)
#: The same warning for a DICOM whose patient age lies outside the training ages.
UNUSUAL_AGE = (
    "The DICOM header puts this patient outside the training ages (children aged 1-5 from one "
    "hospital), so this verdict is less reliable."
)


def with_age_check(check: InputCheck, info: Mapping[str, object]) -> InputCheck:
    """Grade an accepted ``typical`` image ``unusual`` when its DICOM age is outside the
    training ages (``info`` is ``DecodedImage.info``)."""
    if AGE_FIELD not in info or not check.accepted or check.grade == "unusual":
        return check
    return replace(check, grade="unusual", warning=UNUSUAL_AGE)


def grade(distance: float | None, unusual: float | None, refuse: float | None) -> str:
    """The grade of one feature distance (``typical`` when a threshold is missing)."""
    if distance is None:
        return "typical"
    if refuse is not None and distance > refuse:
        return "refused"
    if unusual is not None and distance > unusual:
        return "unusual"
    return "typical"


def choose_unusual_threshold(distances: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of clean validation feature distances."""
    return float(np.quantile(np.asarray(distances, np.float64), quantile))


def grade_shares(
    distances: np.ndarray, unusual: float, refuse: float, refused_anyway: int = 0
) -> dict[str, float]:
    """Share of images in each grade.

    Args:
        distances: ``(n,)`` feature distances of the images a pixel check did not refuse.
        unusual: The unusual threshold.
        refuse: The refusal threshold.
        refused_anyway: Further images refused by a pixel check (counted as refused).
    """
    d = np.asarray(distances, np.float64).reshape(-1)
    total = len(d) + refused_anyway
    if total == 0:
        return {name: 0.0 for name in GRADES}
    refused = int((d > refuse).sum()) + refused_anyway
    unusual_n = int(((d > unusual) & (d <= refuse)).sum())
    return {
        "typical": (len(d) - unusual_n - int((d > refuse).sum())) / total,
        "unusual": unusual_n / total,
        "refused": refused / total,
    }

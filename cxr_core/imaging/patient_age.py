"""A DICOM patient's age against the training ages, read where the header is decoded.

:mod:`cxr_core.imaging.decode` calls these while it reads a DICOM and keeps only the comparison
(never
the age) in ``DecodedImage.info``; :mod:`cxr_core.inference.population` turns it into a warning.
"""

from __future__ import annotations

import re
from datetime import date, datetime

__all__ = ["AGE_FIELD", "TRAINING_AGES", "age_in_years", "outside_training_ages"]

#: Ages in years of the training children (Kermany et al. 2018).
TRAINING_AGES = (1.0, 5.0)
#: Key of ``DecodedImage.info`` set when a DICOM's patient lies outside the training ages.
AGE_FIELD = "patient_age_check"

_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)
_UNIT_YEARS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}


def _dicom_date(text: str | None) -> date | None:
    try:
        return datetime.strptime(str(text).strip()[:8], "%Y%m%d").date() if text else None
    except ValueError:
        return None


def age_in_years(
    patient_age: str | None, birth_date: str | None = None, study_date: str | None = None
) -> float | None:
    """A DICOM patient's age in years, or None when the header does not say.

    Args:
        patient_age: ``PatientAge`` (``nnnD``, ``nnnW``, ``nnnM`` or ``nnnY``).
        birth_date: ``PatientBirthDate`` (``YYYYMMDD``), used when the age is absent.
        study_date: ``StudyDate`` (``YYYYMMDD``) the birth date is counted to; without it
            the birth date is not used (an old film's age is unknown).
    """
    match = _AGE.match(str(patient_age or ""))
    if match:
        return int(match.group(1)) * _UNIT_YEARS[match.group(2).upper()]
    born, taken = _dicom_date(birth_date), _dicom_date(study_date)
    if born is None or taken is None or taken < born:
        return None
    return (taken - born).days / 365.25


def outside_training_ages(age: float | None, ages: tuple[float, float] = TRAINING_AGES) -> bool:
    """Whether a known age lies outside ``ages`` (an unknown age is not flagged)."""
    return age is not None and not ages[0] <= age < ages[1] + 1.0

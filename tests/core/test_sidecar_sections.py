"""The sidecar's typed sections: old sidecars load, wrong shapes name their key, round trips."""

from __future__ import annotations

import pytest

from cxr_core.errors import ModelLoadError
from cxr_core.sidecar import ModelMetadata
from cxr_core.sidecar_sections import IndependentCheck, PopulationCheck

BASE = {"backbone": "small_cnn", "image_size": 64, "threshold": 0.5}
RECORD = IndependentCheck(
    "2026-12-03", "bundled ensemble", 0.871, "test children", 624, "at the stored threshold",
    {"sensitivity": 0.977, "specificity": 0.739, "ece": 0.162},
)  # fmt: skip


def test_an_old_sidecar_with_string_notes_and_no_sections_still_loads() -> None:
    metadata = ModelMetadata.from_dict({**BASE, "independent_checks": ["An old sentence."]})
    assert metadata.independent_checks == ("An old sentence.",)
    assert metadata.independent_records == ()
    assert (metadata.conformal, metadata.population_check, metadata.site_calibration) == (
        None,
        None,
        None,
    )


def test_records_and_sentences_share_the_list_and_round_trip() -> None:
    grades = PopulationCheck(80.5, 0.95, {"validation clean @ q0.95": {"typical": 0.99}})
    metadata = ModelMetadata.from_dict(
        {**BASE, "independent_checks": [RECORD.to_dict(), "A note."],
         "population_check": grades.to_dict()}
    )  # fmt: skip
    assert metadata.independent_records == (RECORD,)
    assert metadata.independent_checks == ("A note.",)
    assert metadata.population_check == grades


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ({"conformal": {"coverage": "high"}}, "coverage must be"),
        ({"conformal": [0.95]}, "conformal must be"),
        ({"independent_checks": [{"model": "m", "population": "p"}]}, "lacks date"),
        ({"independent_checks": [{**RECORD.to_dict(), "figures": {"ece": 3}}]}, "figures must"),
        ({"independent_checks": [5]}, "independent_checks must be"),
        ({"population_check": {"unusual_quantile": 0.9}}, "lacks unusual_threshold"),
        ({"site_calibration": {"site": "b"}}, "lacks n_normal"),
    ],
)
def test_a_wrongly_shaped_section_is_a_model_load_error_naming_its_key(entries, reason) -> None:
    with pytest.raises(ModelLoadError, match=reason):
        ModelMetadata.from_dict({**BASE, **entries})

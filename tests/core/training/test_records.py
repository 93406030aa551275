"""The typed records of one training run reject names they do not have."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cxr_core.distributed.prepared import PreparedData
from cxr_core.runs.files import RunPaths
from cxr_core.runs.progress import Workload
from cxr_core.training.monitor import TrainingContext


def _prepared() -> PreparedData:
    return PreparedData(
        train_table=None,
        val_table=None,
        description="validation: 8 images",
        fingerprint="abc",
        train=None,
        val="all of val",
        cache="off",
        class_weight=None,
    )


def test_prepared_data_rejects_an_unknown_or_changed_attribute() -> None:
    prepared = _prepared()
    with pytest.raises(AttributeError):
        prepared.fit_vall = "share"
    with pytest.raises(AttributeError):
        prepared.cache = "memory"  # frozen: shard_inputs returns a new one
    with pytest.raises(TypeError):
        dataclasses.replace(prepared, fit_vall="share")


def test_prepared_data_fits_on_the_validation_share_when_there_is_one() -> None:
    prepared = _prepared()
    assert prepared.fit_validation == "all of val"
    assert dataclasses.replace(prepared, fit_val="share").fit_validation == "share"


def test_training_context_takes_rates_but_rejects_a_misspelt_attribute(tmp_path: Path) -> None:
    context = TrainingContext(
        paths=RunPaths(tmp_path),
        stop=None,
        resume=False,
        started=0.0,
        status_interval=2.0,
        strategy=None,
        cluster=None,
        batch_size=8,
        workload=Workload(32, 8, 8, 2),
    )
    context.train_rate = 12.5
    assert context.train_rate == 12.5 and context.phase_start_seconds is None
    with pytest.raises(AttributeError):
        context.train_rat = 12.5

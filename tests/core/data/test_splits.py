"""Tests of cxr_core.data.splits: duplicates and patients kept on one side, resolve_splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from cxr_core import data
from cxr_core.config import DataConfig
from cxr_core.errors import ConfigError, DataError

# --- duplicates and patient-grouped splits -------------------------------------------------------


@pytest.fixture(scope="module")
def real_train(shared_data) -> pd.DataFrame:
    table = data.scan(shared_data)
    return data.add_content_hashes(table[table["split"] == "train"])


def test_real_train_has_28_duplicate_pairs(real_train):
    groups = data.duplicate_groups(real_train)

    sizes = groups.groupby("duplicate_group").size()
    assert int((sizes * (sizes - 1) // 2).sum()) == 28
    assert groups.groupby("duplicate_group")["content_hash"].nunique().eq(1).all()


def test_split_of_real_train_keeps_patients_and_copies_on_one_side(real_train):
    train, val = data.split_by_patient(real_train, val_fraction=0.15, seed=42)

    assert len(train) + len(val) == len(real_train)
    assert not set(train["patient_id"]) & set(val["patient_id"])
    assert not set(train["content_hash"]) & set(val["content_hash"])
    assert 0.14 < len(val) / len(real_train) < 0.16
    share = (real_train["label"] == "PNEUMONIA").mean()
    assert abs((val["label"] == "PNEUMONIA").mean() - share) < 0.02


def test_planted_duplicate_is_reported_and_stays_with_its_copy(tiny_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    original = root / "train" / "NORMAL" / "NORMAL2-IM-0204-0001.jpeg"
    shutil.copyfile(original, original.with_name("extra_scan.jpeg"))
    table = data.add_content_hashes(data.scan(root))
    train = table[table["split"] == "train"]

    groups = data.duplicate_groups(table)
    sides = [
        {Path(p).name for p in val["path"]} & {original.name, "extra_scan.jpeg"}
        for _, val in (data.split_by_patient(train, 0.3, seed) for seed in range(8))
    ]

    assert sorted(Path(p).name for p in groups["path"]) == [original.name, "extra_scan.jpeg"]
    assert all(len(side) in (0, 2) for side in sides)
    assert any(len(side) == 2 for side in sides)


def test_split_by_patient_is_deterministic_per_seed(tiny_dataset):
    table = data.scan(tiny_dataset)
    train = table[table["split"] == "train"]

    first = data.split_by_patient(train, 0.25, seed=3)[1]["path"].tolist()
    again = data.split_by_patient(train, 0.25, seed=3)[1]["path"].tolist()
    others = [data.split_by_patient(train, 0.25, seed=s)[1]["path"].tolist() for s in range(4, 8)]

    assert first == again
    assert any(other != first for other in others)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_split_by_patient_rejects_fraction_outside_0_1(tiny_dataset, fraction):
    with pytest.raises(ConfigError, match="val_fraction"):
        data.split_by_patient(data.scan(tiny_dataset), fraction, seed=0)


# --- resolve_splits ------------------------------------------------------------------------------


def test_resolve_splits_carves_validation_from_train_when_val_is_small(tiny_dataset):
    table = data.scan(tiny_dataset)

    train, val, description = data.resolve_splits(table, DataConfig(val_fraction=0.25))

    assert len(train) + len(val) == 24
    assert set(val["split"]) == {"train"}
    assert not set(train["patient_id"]) & set(val["patient_id"])
    assert description.startswith(f"train: {len(train)} images; validation: {len(val)} images")
    assert "patient-grouped split of train (the dataset's val split has 8)" in description


def test_resolve_splits_uses_the_datasets_val_split_when_large_enough(tiny_dataset):
    table = data.scan(tiny_dataset)

    train, val, description = data.resolve_splits(table, DataConfig(min_val_images=8))

    assert (len(train), len(val)) == (24, 8)
    assert set(val["split"]) == {"val"}
    assert "the dataset's own val split" in description


def test_resolve_splits_limits_train_per_class_and_val_in_proportion(tiny_dataset):
    table = data.scan(tiny_dataset)
    config = DataConfig(min_val_images=8, limit_per_class=3)

    train, val, description = data.resolve_splits(table, config)
    again = data.resolve_splits(table, config)[0]

    assert train["label"].value_counts().to_dict() == {"NORMAL": 3, "PNEUMONIA": 3}
    assert val["label"].value_counts().to_dict() == {"NORMAL": 1, "PNEUMONIA": 1}
    assert train["path"].tolist() == again["path"].tolist()
    assert "at most 3 images per class" in description


def test_resolve_splits_needs_a_train_split(tiny_dataset):
    table = data.scan(tiny_dataset)

    with pytest.raises(DataError, match="no train split"):
        data.resolve_splits(table[table["split"] == "val"], DataConfig())


def test_resolve_splits_needs_both_classes_in_validation(tiny_dataset):
    table = data.scan(tiny_dataset)
    no_ill_val = table[(table["split"] == "train") | (table["label"] == "NORMAL")]

    with pytest.raises(DataError, match="validation data has no PNEUMONIA images"):
        data.resolve_splits(no_ill_val, DataConfig(min_val_images=1))

"""Tests of cxr_core.data (tables, splits, pipeline) and cxr_core.data.augment: scanning,
patient ids, splits, tf.data."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from cxr_core import data
from cxr_core.config import DataConfig
from cxr_core.data.augment import make_augmenter
from cxr_core.data.tables import COLUMNS
from cxr_core.errors import ConfigError, DataError
from cxr_core.imaging.preprocess import to_model_input
from cxr_core.imaging.scoring import decode_for_model

QUICK = DataConfig(batch_size=5, augment=0.0, acquisition_augment=0.0, cache=False)


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    """Create ``files`` (relative path -> content) under ``root`` and return ``root``."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def _reference_image(path: str, size: int) -> np.ndarray:
    # The decoder of every score (Diagnose, predict, evaluate), not tf.io.decode_image, whose
    # fast integer IDCT gave other grey levels.
    return to_model_input(decode_for_model(path).pixels, size).numpy()


def _images(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    batches = list(dataset.as_numpy_iterator())
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _positions(images: np.ndarray, reference: np.ndarray) -> list[int]:
    """Index in ``reference`` of each image, or -1 where it matches none or several."""
    matches = [
        np.flatnonzero(np.abs(reference - image).max(axis=(1, 2, 3)) < 1e-4) for image in images
    ]
    return [int(m[0]) if len(m) == 1 else -1 for m in matches]


# --- scan ---------------------------------------------------------------------------------------


def test_scan_lists_every_image_with_split_label_and_patient(tiny_dataset):
    table = data.scan(tiny_dataset)

    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 32
    assert table["path"].map(lambda p: Path(p).is_absolute() and Path(p).is_file()).all()
    assert (table["label_index"] == (table["label"] == "PNEUMONIA").astype(int)).all()
    assert table["bytes"].tolist() == [Path(p).stat().st_size for p in table["path"]]
    row = table[table["path"].str.endswith("IM-0101-0001-0002.jpeg")].iloc[0]
    assert (row["split"], row["label"], row["patient_id"]) == ("train", "NORMAL", "IM-0101")


def test_scan_sorts_rows_by_split_label_and_path(tiny_dataset):
    table = data.scan(tiny_dataset)

    keys = list(zip(table["split"], table["label_index"], table["path"], strict=True))
    assert keys == sorted(keys, key=lambda k: (data.SPLITS.index(k[0]), k[1], k[2]))


def test_scan_matches_folders_and_extensions_in_any_case_and_skips_hidden_files(tmp_path):
    root = _tree(
        tmp_path,
        {
            "Train/normal/IM-0001-0001.JPEG": b"x",
            "Train/normal/.DS_Store": b"x",
            "Train/normal/._IM-0001-0001.jpeg": b"x",
            "Train/normal/notes.txt": b"x",
            "Train/Pneumonia/person1_virus_6.Png": b"x",
            "Train/Pneumonia/scan.dcm": b"x",
            "Train/COVID/other.jpeg": b"x",
            "__MACOSX/train/x.jpeg": b"x",
        },
    )

    table = data.scan(root)

    assert table["path"].map(lambda p: Path(p).name).tolist() == [
        "IM-0001-0001.JPEG",
        "person1_virus_6.Png",
        "scan.dcm",
    ]
    assert set(table["split"]) == {"train"}
    assert table["label"].tolist() == ["NORMAL", "PNEUMONIA", "PNEUMONIA"]


@pytest.mark.parametrize(
    ("files", "scanned", "named", "words"),
    [
        ({}, "missing", "missing", "does not exist"),
        ({"afile": b"x"}, "afile", "afile", "is not a folder"),
        ({"images/NORMAL/a.jpeg": b"x"}, ".", ".", "No train, val or test folder"),
        ({"train/NORMAL/a.jpeg": b"x"}, ".", "train", "has no PNEUMONIA folder"),
        (
            {"val/NORMAL/a.jpeg": b"x", "val/PNEUMONIA/.hidden.jpeg": b"x"},
            ".",
            "val/PNEUMONIA",
            "contains no images",
        ),
    ],
    ids=["missing-root", "root-is-file", "no-split", "no-class-folder", "empty-class"],
)
def test_scan_raises_data_error_naming_the_path(tmp_path, files, scanned, named, words):
    _tree(tmp_path, files)

    with pytest.raises(DataError, match=words) as error:
        data.scan(tmp_path / scanned)

    assert str((tmp_path / named).resolve()) in str(error.value)


def test_count_table_counts_each_split_and_class_with_totals(tiny_dataset):
    counts = data.count_table(data.scan(tiny_dataset))

    assert counts.to_dict("index") == {
        "train": {"NORMAL": 12, "PNEUMONIA": 12, "total": 24},
        "val": {"NORMAL": 4, "PNEUMONIA": 4, "total": 8},
        "total": {"NORMAL": 16, "PNEUMONIA": 16, "total": 32},
    }


def test_scan_and_count_the_real_dataset(shared_data):
    counts = data.count_table(data.scan(shared_data))

    assert counts.loc["train", "NORMAL"] == 1341
    assert counts.loc["train", "PNEUMONIA"] == 3875
    assert counts.loc["val", "total"] == 16


# --- patient ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "label", "expected"),
    [
        ("person1946_bacteria_4874.jpeg", "PNEUMONIA", "person1946"),
        ("person1946_bacteria_4875.jpeg", "PNEUMONIA", "person1946"),
        ("person1_virus_6.jpeg", "PNEUMONIA", "person1"),
        ("person1180_virus_2010_2.jpeg", "PNEUMONIA", "person1180"),
        ("IM-0115-0001.jpeg", "NORMAL", "IM-0115"),
        ("IM-0001-0002.jpeg", "NORMAL", "IM-0001"),
        ("IM-0429-0001-0002.jpeg", "NORMAL", "IM-0429"),
        ("NORMAL2-IM-0393-0001.jpeg", "NORMAL", "NORMAL2-IM-0393"),
        ("NORMAL2-IM-0587-0001-0002.jpeg", "NORMAL", "NORMAL2-IM-0587"),
        ("/data/train/NORMAL/IM-0115-0001.jpeg", "NORMAL", "IM-0115"),
        ("scan_17.png", "NORMAL", "NORMAL:scan_17"),
        ("IM-0115.jpeg", "NORMAL", "NORMAL:IM-0115"),
        ("001.dcm", "PNEUMONIA", "PNEUMONIA:001"),
    ],
)
def test_patient_id_reads_kaggle_names_and_falls_back_to_the_stem(filename, label, expected):
    assert data.patient_id(filename, label) == expected


def test_patient_id_of_unknown_names_differs_between_classes():
    assert data.patient_id("001.png", "NORMAL") != data.patient_id("001.png", "PNEUMONIA")


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


# --- class weights and fingerprint --------------------------------------------------------------


def test_class_weights_are_n_over_twice_the_class_count():
    assert data.class_weights([0, 1, 1, 1]) == pytest.approx({0: 2.0, 1: 4 / 6})
    kaggle = np.array([0] * 1341 + [1] * 3875)
    assert data.class_weights(kaggle) == pytest.approx({0: 5216 / 2682, 1: 5216 / 7750})


@pytest.mark.parametrize(("labels", "words"), [([1, 1], "no NORMAL"), ([0, 2], "0 .NORMAL.")])
def test_class_weights_reject_a_missing_class_or_unknown_label(labels, words):
    with pytest.raises(DataError, match=words):
        data.class_weights(labels)


def test_fingerprint_ignores_location_and_row_order_but_not_content(tiny_dataset, tmp_path):
    table = data.scan(tiny_dataset)
    moved = tmp_path / "elsewhere"
    shutil.copytree(tiny_dataset, moved)
    changed = moved / "val" / "NORMAL" / "NORMAL2-IM-1427-0001.jpeg"

    moved_print = data.fingerprint(data.scan(moved).iloc[::-1])
    changed.write_bytes(changed.read_bytes() + b"\0")

    assert len(data.fingerprint(table)) == 16
    assert moved_print == data.fingerprint(table)
    assert data.fingerprint(data.scan(moved)) != data.fingerprint(table)
    assert data.fingerprint(table.iloc[1:]) != data.fingerprint(table)


# --- make_dataset and augmentation --------------------------------------------------------------


def test_make_dataset_for_evaluation_keeps_order_and_matches_the_shared_preprocessing(
    tiny_dataset,
):
    table = data.scan(tiny_dataset)

    batches = list(data.make_dataset(table, 48, QUICK, training=False).as_numpy_iterator())
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])

    assert [b[0].shape for b in batches] == [(5, 48, 48, 3)] * 6 + [(2, 48, 48, 3)]
    assert images.dtype == np.float32 and labels.dtype == np.float32
    assert labels.tolist() == table["label_index"].astype(float).tolist()
    assert images.min() >= 0 and images.max() <= 255
    for row in (0, 13, len(table) - 1):
        expected = _reference_image(table["path"].iloc[row], 48)
        np.testing.assert_allclose(images[row], expected, atol=1e-4)


def test_make_dataset_for_training_yields_every_image_once_reshuffled_each_epoch(tiny_dataset):
    table = data.scan(tiny_dataset)
    config = dataclasses.replace(QUICK, cache=True)
    dataset = data.make_dataset(table, 32, config, training=True)

    first, first_labels = _images(dataset)
    second, _ = _images(dataset)
    clean, clean_labels = _images(data.make_dataset(table, 32, QUICK, training=False))

    positions = _positions(first, clean)
    assert sorted(positions) == list(range(len(table)))
    assert first_labels.tolist() == clean_labels[positions].tolist()
    assert _positions(second, clean) != positions


def test_augmentation_changes_training_pixels_but_never_evaluation_pixels(tiny_dataset):
    table = data.scan(tiny_dataset).iloc[:6]
    strong = dataclasses.replace(QUICK, augment=2.0, batch_size=6, horizontal_flip=True)
    clean, _ = _images(data.make_dataset(table, 32, QUICK, training=False))

    evaluated, _ = _images(data.make_dataset(table, 32, strong, training=False))
    trained, _ = _images(data.make_dataset(table, 32, strong, training=True))

    np.testing.assert_array_equal(evaluated, clean)
    closest = [np.abs(clean - image).max(axis=(1, 2, 3)).min() for image in trained]
    assert min(closest) > 1.0
    assert trained.min() >= 0 and trained.max() <= 255
    np.testing.assert_array_equal(trained[..., 0], trained[..., 2])


def test_make_dataset_rejects_dicom_files_up_front(tmp_path):
    root = _tree(tmp_path, {"train/NORMAL/a.png": b"x", "train/PNEUMONIA/b.dcm": b"x"})

    with pytest.raises(DataError, match="DICOM files .* convert them to PNG"):
        data.make_dataset(data.scan(root), 32, QUICK, training=False)


def test_make_dataset_rejects_an_empty_table(tiny_dataset):
    with pytest.raises(DataError, match="no images"):
        data.make_dataset(data.scan(tiny_dataset).iloc[:0], 32, QUICK, training=False)


def test_augmenter_keeps_extreme_pixels_in_range_and_is_identity_outside_training():
    images = np.zeros((4, 32, 32, 3), np.float32)
    images[:, :, 16:] = 255.0
    augmenter = make_augmenter(2.0, horizontal_flip=True, seed=1)

    trained = augmenter(images, training=True).numpy()
    inferred = augmenter(images, training=False).numpy()

    assert trained.shape == images.shape
    assert trained.min() >= 0 and trained.max() <= 255
    assert not np.array_equal(trained, images)
    np.testing.assert_array_equal(inferred, images)


@pytest.mark.parametrize("strength", [-0.5, 2.5, True])
def test_make_augmenter_rejects_strength_outside_0_2(strength):
    with pytest.raises(ConfigError, match="strength"):
        make_augmenter(strength)

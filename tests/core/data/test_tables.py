"""Tests of cxr_core.data.tables: scanning, counts, patient ids, class weights, fingerprints."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cxr_core import data
from cxr_core.data.tables import COLUMNS
from cxr_core.errors import DataError
from tests.core.data.trees import make_tree

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
    root = make_tree(
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
    make_tree(tmp_path, files)

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

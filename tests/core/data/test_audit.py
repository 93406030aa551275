"""Tests for cxr_core.data.audit: storage differences by class, duplicates, patients across
splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cxr_core.data import audit
from cxr_core.data import tables as data


def write(path: Path, size: tuple[int, int] = (64, 48), mode: str = "L", seed: int = 0) -> None:
    """Save a noise image of ``size`` (width, height) and Pillow ``mode`` at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(path)


def write_dicom(path: Path, rows: int, columns: int) -> None:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1.1", generate_uid()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, 1
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.zeros((rows, columns), np.uint16).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def make_tree(root: Path, normal: dict, pneumonia: dict, n: int = 4, split: str = "train") -> Path:
    """``n`` images per class; ``normal``/``pneumonia`` are keyword arguments of :func:`write`."""
    for index in range(n):
        write(root / split / "NORMAL" / f"IM-{index:04d}-0001.png", seed=index, **normal)
        write(
            root / split / "PNEUMONIA" / f"person{index}_virus_{index}.png",
            seed=99 - index,
            **pneumonia,
        )
    return root


def test_classes_stored_alike_give_no_warning(tmp_path):
    table = data.scan(make_tree(tmp_path, {}, {}))
    assert audit.shortcut_warnings(audit.image_properties(table)) == []


def test_larger_normal_images_give_a_size_warning_with_both_medians(tmp_path):
    table = data.scan(make_tree(tmp_path, {"size": (160, 128)}, {"size": (100, 64)}))
    warnings = audit.shortcut_warnings(audit.image_properties(table))
    assert len(warnings) == 1
    assert warnings[0].startswith("In train: image sizes differ by class")
    assert "median 160 x 128 for NORMAL and 100 x 64 for PNEUMONIA" in warnings[0]


def test_rgb_stored_pneumonia_images_give_a_colour_mode_warning(tmp_path):
    table = data.scan(make_tree(tmp_path, {}, {"mode": "RGB"}))
    warnings = audit.shortcut_warnings(audit.image_properties(table))
    assert any(
        "100% of PNEUMONIA images but 0% of NORMAL images are stored as RGB" in w for w in warnings
    )


def test_a_difference_between_splits_only_is_not_a_shortcut(tmp_path):
    make_tree(tmp_path, {"size": (160, 160)}, {"size": (160, 160)}, split="train")
    make_tree(
        tmp_path, {"size": (64, 64), "mode": "RGB"}, {"size": (64, 64), "mode": "RGB"}, split="test"
    )
    assert audit.shortcut_warnings(audit.image_properties(data.scan(tmp_path))) == []


def test_image_properties_reads_headers_and_samples_at_most_per_class(tmp_path):
    make_tree(tmp_path, {"size": (80, 40)}, {"size": (80, 40), "mode": "RGB"}, n=6)
    properties = audit.image_properties(data.scan(tmp_path), per_class=2)
    assert len(properties) == 4
    assert set(properties["format"]) == {"PNG"}
    assert (properties[["width", "height"]].to_numpy() == [80, 40]).all()
    assert sorted(properties["mode"]) == ["L", "L", "RGB", "RGB"]


def test_dicom_headers_give_size_and_photometric_interpretation(tmp_path):
    make_tree(tmp_path, {}, {}, n=1)
    write_dicom(tmp_path / "train" / "NORMAL" / "scan.dcm", rows=70, columns=90)
    properties = audit.image_properties(data.scan(tmp_path))
    row = properties[properties["path"].str.endswith("scan.dcm")].iloc[0]
    assert (row["format"], row["width"], row["height"], row["mode"]) == (
        "DICOM",
        90,
        70,
        "MONOCHROME1",
    )


def test_unreadable_files_are_counted_in_a_warning(tmp_path):
    make_tree(tmp_path, {}, {})
    (tmp_path / "train" / "NORMAL" / "broken.png").write_bytes(b"not an image at all")
    properties = audit.image_properties(data.scan(tmp_path))
    assert (properties["format"] == "unreadable").sum() == 1
    warnings = audit.shortcut_warnings(properties)
    assert warnings[-1].startswith("1 sampled files could not be read")


def test_property_summary_has_one_row_per_split_and_class_in_order(tmp_path):
    make_tree(tmp_path, {"size": (50, 40)}, {}, split="val")
    make_tree(tmp_path, {}, {}, split="train")
    summary = audit.property_summary(audit.image_properties(data.scan(tmp_path)))
    assert list(zip(summary["split"], summary["label"], strict=True)) == [
        ("train", "NORMAL"),
        ("train", "PNEUMONIA"),
        ("val", "NORMAL"),
        ("val", "PNEUMONIA"),
    ]
    val_normal = summary.iloc[2]
    assert (val_normal["median_width"], val_normal["median_height"]) == (50, 40)
    assert val_normal["modes"] == "L 100%" and val_normal["formats"] == "PNG 100%"


def test_duplicates_across_splits_and_labels_are_flagged(tmp_path):
    make_tree(tmp_path, {}, {})
    make_tree(tmp_path, {}, {}, split="test", n=1)  # IM-0000 and person0 copied into test
    source = tmp_path / "train" / "NORMAL" / "IM-0001-0001.png"
    (tmp_path / "train" / "PNEUMONIA" / "copy.png").write_bytes(source.read_bytes())
    groups = audit.duplicate_summary(data.scan(tmp_path))
    assert len(groups) == 3
    across = groups[groups["across_splits"]]
    assert sorted(across["labels"]) == ["NORMAL", "PNEUMONIA"]
    conflicting = groups[groups["conflicting_labels"]].iloc[0]
    assert conflicting["names"] == "IM-0001-0001.png, copy.png"
    assert not conflicting["across_splits"]


def test_no_duplicates_give_an_empty_table_with_columns(tmp_path):
    groups = audit.duplicate_summary(data.scan(make_tree(tmp_path, {}, {})))
    assert groups.empty and "across_splits" in groups.columns


def test_patients_in_two_splits_are_listed_but_generic_names_are_not(tmp_path):
    make_tree(tmp_path, {}, {})
    write(tmp_path / "test" / "NORMAL" / "IM-0002-0001-0002.png", seed=50)
    write(tmp_path / "test" / "PNEUMONIA" / "person3_bacteria_77.png", seed=51)
    for split in ("train", "test"):  # the same generic name in two splits: two patients
        write(tmp_path / split / "NORMAL" / "001.png", seed=60 if split == "train" else 61)
    shared = audit.cross_split_patients(data.scan(tmp_path))
    assert list(shared["patient_id"]) == ["IM-0002", "person3"]
    assert set(shared["splits"]) == {"train, test"}
    assert list(shared["images"]) == [2, 2]


def test_audit_of_the_shared_dataset_flags_only_the_full_resolution_val_sizes(shared_data):
    result = audit.audit_dataset(data.scan(shared_data), per_class=50)
    assert len(result.summary) == 4
    assert [w.split(":")[0] for w in result.warnings] == ["In val"]
    assert result.cross_split.empty
    assert len(result.duplicates) > 0 and not result.duplicates["across_splits"].any()


@pytest.mark.parametrize("per_class", [1, 3])
def test_audit_dataset_bundles_every_check(tmp_path, per_class):
    table = data.scan(make_tree(tmp_path, {"size": (200, 200)}, {}))
    result = audit.audit_dataset(table, per_class=per_class)
    assert len(result.properties) == 2 * per_class
    assert result.warnings and result.duplicates.empty and result.cross_split.empty

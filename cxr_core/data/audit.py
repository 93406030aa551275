"""Audit a dataset for what could let a model learn the file instead of the lungs.

Three checks, all on a :func:`cxr_core.data.tables.scan` table:

- **Storage by class**: image size, colour mode and format read from the file headers only
  (Pillow's lazy ``Image.open``, pydicom with ``stop_before_pixels``), on a seeded sample of at
  most ``per_class`` files per split and class. In the original Kaggle files NORMAL images are
  larger and every RGB-stored image is a PNEUMONIA training image; a difference like that is a
  shortcut a network can learn, so :func:`shortcut_warnings` says so in plain words.
- **Exact duplicates**: files with identical bytes (:func:`cxr_core.data.tables.duplicate_groups`),
  flagged when one group spans two splits or two labels.
- **Patients in more than one split**: a child in train and in test makes the test optimistic.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

from cxr_core.config import CLASS_NAMES
from cxr_core.data.tables import SPLITS, duplicate_groups

__all__ = [
    "MODE_SHARE_WARNING",
    "SAMPLE_PER_CLASS",
    "SIZE_RATIO_WARNING",
    "AuditResult",
    "audit_dataset",
    "cross_split_patients",
    "duplicate_summary",
    "image_properties",
    "property_summary",
    "shortcut_warnings",
]

#: Files whose headers are read per split and class; enough for medians and shares.
SAMPLE_PER_CLASS = 500
#: A class whose median width or height is this many times the other's gets a warning.
SIZE_RATIO_WARNING = 1.2
#: A colour mode or format whose share differs by this much between classes gets a warning.
MODE_SHARE_WARNING = 0.10

_PROPERTY_COLUMNS = ["path", "split", "label", "format", "width", "height", "mode"]


@dataclass(frozen=True)
class AuditResult:
    """Everything :func:`audit_dataset` found.

    Attributes:
        properties: One row per sampled file (see :func:`image_properties`).
        summary: One row per split and class (see :func:`property_summary`).
        warnings: Plain sentences, one per possible shortcut; empty when none was found.
        duplicates: One row per group of identical files (see :func:`duplicate_summary`).
        cross_split: One row per patient found in several splits.
    """

    properties: pd.DataFrame
    summary: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    duplicates: pd.DataFrame = field(default_factory=pd.DataFrame)
    cross_split: pd.DataFrame = field(default_factory=pd.DataFrame)


def _header(path: str) -> tuple[str, int, int, str]:
    """(format, width, height, mode) from the file header, without decoding any pixel."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return str(image.format), int(image.width), int(image.height), str(image.mode)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        pass
    try:
        import pydicom  # only for files Pillow cannot open: half a second to import

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warnings can quote field values
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
        mode = str(dataset.get("PhotometricInterpretation", "")) or "unknown"
        return "DICOM", int(dataset.Columns), int(dataset.Rows), mode
    except Exception:  # noqa: BLE001 - pydicom raises many kinds for a non-DICOM file
        return "unreadable", 0, 0, "unreadable"


def image_properties(
    table: pd.DataFrame, per_class: int = SAMPLE_PER_CLASS, seed: int = 0
) -> pd.DataFrame:
    """Read size, colour mode and format of a sample of files from their headers.

    Args:
        table: A :func:`cxr_core.data.tables.scan` table.
        per_class: At most this many files per split and class (a seeded sample), at least 1.
        seed: Seed of the sample.

    Returns:
        One row per sampled file with columns ``path``, ``split``, ``label``, ``format``
        (``"JPEG"``, ``"PNG"``, ``"DICOM"`` or ``"unreadable"``), ``width`` and ``height``
        (pixels; 0 if unreadable) and ``mode`` (Pillow mode such as ``"L"`` or ``"RGB"``, or
        the DICOM photometric interpretation).
    """
    per_class = max(1, int(per_class))
    parts = [
        group.sample(min(per_class, len(group)), random_state=seed).sort_values("path")
        for _, group in table.groupby(["split", "label"], sort=True)
    ]
    if not parts:
        return pd.DataFrame(columns=_PROPERTY_COLUMNS)
    sample = pd.concat(parts, ignore_index=True)
    headers = [_header(path) for path in sample["path"]]
    result = sample[["path", "split", "label"]].copy()
    result[["format", "width", "height", "mode"]] = pd.DataFrame(headers, index=result.index)
    return result.astype({"width": int, "height": int})


def _shares(values: pd.Series) -> str:
    """``"L 98%, RGB 2%"``: each value's share, most frequent first."""
    shares = values.value_counts(normalize=True)
    return ", ".join(f"{name} {share:.0%}" for name, share in shares.items())


def property_summary(properties: pd.DataFrame) -> pd.DataFrame:
    """Summarise :func:`image_properties` per split and class.

    Returns:
        One row per (split, label) present, in ``SPLITS`` then ``CLASS_NAMES`` order, with
        columns ``split``, ``label``, ``sampled``, ``median_width``, ``median_height``,
        ``min_side``, ``max_side``, ``modes`` and ``formats`` (shares as text).
    """
    rows = []
    readable = properties[properties["format"] != "unreadable"]
    for (split, label), group in properties.groupby(["split", "label"], sort=False):
        ok = readable[(readable["split"] == split) & (readable["label"] == label)]
        sides = pd.concat([ok["width"], ok["height"]])
        rows.append(
            {
                "split": split,
                "label": label,
                "sampled": len(group),
                "median_width": int(ok["width"].median()) if len(ok) else 0,
                "median_height": int(ok["height"].median()) if len(ok) else 0,
                "min_side": int(sides.min()) if len(ok) else 0,
                "max_side": int(sides.max()) if len(ok) else 0,
                "modes": _shares(group["mode"]),
                "formats": _shares(group["format"]),
            }
        )
    summary = pd.DataFrame(rows)
    if summary.empty:
        return summary
    order = {name: index for index, name in enumerate(SPLITS)}
    summary["_split"] = summary["split"].map(lambda s: order.get(s, len(order)))
    summary["_label"] = summary["label"].map(lambda s: CLASS_NAMES.index(s))
    summary = summary.sort_values(["_split", "_label", "split"], kind="stable")
    return summary.drop(columns=["_split", "_label"]).reset_index(drop=True)


def _size_warning(readable: pd.DataFrame) -> str | None:
    medians = readable.groupby("label")[["width", "height"]].median()
    normal, pneumonia = medians.loc[CLASS_NAMES[0]], medians.loc[CLASS_NAMES[1]]
    ratios = [max(a, b) / max(min(a, b), 1) for a, b in zip(normal, pneumonia, strict=True)]
    if max(ratios) < SIZE_RATIO_WARNING:
        return None
    return (
        f"image sizes differ by class: median {normal['width']:.0f} x {normal['height']:.0f} "
        f"for NORMAL and {pneumonia['width']:.0f} x {pneumonia['height']:.0f} for PNEUMONIA. "
        "A model can learn the size or shape of the file instead of the lungs (resizing "
        "leaves different blur and stretching)."
    )


def _share_warnings(readable: pd.DataFrame, column: str, what: str) -> list[str]:
    shares = pd.crosstab(readable["label"], readable[column], normalize="index")
    found = []
    for value in shares.columns:
        normal, pneumonia = shares.loc[CLASS_NAMES[0], value], shares.loc[CLASS_NAMES[1], value]
        if abs(normal - pneumonia) >= MODE_SHARE_WARNING:
            found.append(
                f"{pneumonia:.0%} of PNEUMONIA images but {normal:.0%} of NORMAL images are "
                f"stored as {value} ({what}). The model sees greyscale pixels either way, but "
                "the storage can leave traces (compression, bit depth) that are a shortcut."
            )
    return found


def shortcut_warnings(properties: pd.DataFrame) -> list[str]:
    """Describe the storage differences between classes that a model could exploit.

    Classes are compared within each split that holds both (a difference between splits is
    not a shortcut for telling the classes apart).

    Args:
        properties: Output of :func:`image_properties`.

    Returns:
        Plain sentences, each starting with its split ("In train: ..."): one when the median
        width or height differs by ``SIZE_RATIO_WARNING`` or more between NORMAL and
        PNEUMONIA, one per colour mode or file format whose share differs by
        ``MODE_SHARE_WARNING`` or more, and a last one when files cannot be read. Empty when
        the classes are stored alike.
    """
    readable = properties[properties["format"] != "unreadable"]
    found = []
    present = set(readable["split"])
    for split in [s for s in SPLITS if s in present] + sorted(present - set(SPLITS)):
        rows = readable[readable["split"] == split]
        if rows["label"].nunique() < len(CLASS_NAMES):
            continue
        size = _size_warning(rows)
        problems = ([size] if size else []) + _share_warnings(rows, "mode", "colour mode")
        problems += _share_warnings(rows, "format", "file format")
        found += [f"In {split}: {problem[0].lower()}{problem[1:]}" for problem in problems]
    unreadable = len(properties) - len(readable)
    if unreadable:
        found.append(
            f"{unreadable} sampled files could not be read as JPEG, PNG or DICOM; training "
            "will fail on them, so remove or convert them."
        )
    return found


def duplicate_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Group the files whose bytes are identical.

    Args:
        table: A :func:`cxr_core.data.tables.scan` table; every file is hashed unless the table
            already has a ``content_hash`` column.

    Returns:
        One row per group with columns ``files`` (count), ``splits`` and ``labels`` (sorted,
        comma-separated), ``across_splits`` and ``conflicting_labels`` (bool), and ``names``
        (the file names, comma-separated). Empty (with those columns) when there are none.
    """
    copies = duplicate_groups(table)
    columns = ["files", "splits", "labels", "across_splits", "conflicting_labels", "names"]
    if copies.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for _, group in copies.groupby("duplicate_group", sort=True):
        splits, labels = sorted(set(group["split"])), sorted(set(group["label"]))
        rows.append(
            {
                "files": len(group),
                "splits": ", ".join(splits),
                "labels": ", ".join(labels),
                "across_splits": len(splits) > 1,
                "conflicting_labels": len(labels) > 1,
                "names": ", ".join(Path(path).name for path in group["path"]),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def cross_split_patients(table: pd.DataFrame) -> pd.DataFrame:
    """List the patients with images in more than one split.

    Only Kaggle-named files carry a patient; a file whose id is its own name
    (``"<label>:<stem>"``, see :func:`cxr_core.data.tables.patient_id`) is never counted, so
    ``train/NORMAL/001.png`` and ``test/NORMAL/001.png`` are not taken for one child.

    Returns:
        One row per patient, with columns ``patient_id``, ``splits`` (comma-separated, in
        ``SPLITS`` order), ``images`` and ``example`` (one file name); sorted by patient.
    """
    fallback = table["patient_id"].str.startswith(tuple(f"{name}:" for name in CLASS_NAMES))
    named = table[~fallback]
    columns = ["patient_id", "splits", "images", "example"]
    spread = named.groupby("patient_id")["split"].nunique()
    shared = spread[spread > 1].index
    rows = []
    for patient in sorted(shared):
        group = named[named["patient_id"] == patient]
        present = set(group["split"])
        ordered = [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))
        rows.append(
            {
                "patient_id": patient,
                "splits": ", ".join(ordered),
                "images": len(group),
                "example": Path(group["path"].iloc[0]).name,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def audit_dataset(
    table: pd.DataFrame, per_class: int = SAMPLE_PER_CLASS, seed: int = 0
) -> AuditResult:
    """Run every check of this module on one dataset.

    Args:
        table: A :func:`cxr_core.data.tables.scan` table (every file is hashed for duplicates).
        per_class: Files per split and class whose headers are read.
        seed: Seed of that sample.

    Returns:
        An :class:`AuditResult`.

    Raises:
        DataError: A file cannot be read while hashing.
    """
    properties = image_properties(table, per_class=per_class, seed=seed)
    return AuditResult(
        properties=properties,
        summary=property_summary(properties),
        warnings=shortcut_warnings(properties),
        duplicates=duplicate_summary(table),
        cross_split=cross_split_patients(table),
    )

"""Find chest X-ray images on disk and describe them: one table, a row per image.

The layout is that of Kaggle's "Chest X-Ray Images (Pneumonia)" (Kermany, Zhang and Goldbaum
2018, Mendeley Data, CC BY 4.0): ``ROOT/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg``. A dataset
is one table (:func:`scan`) with a row per image: path, split, label, patient and size. Here too:
counts per split and class, content hashes and exact duplicates, the fingerprint saved with a
model, and class weights. Children have several images, and some files are exact copies, so
validation data is carved out of train by patient and by file content
(:mod:`cxr_core.data.splits`), never by image; :mod:`cxr_core.data.pipeline` feeds a table's
images to Keras.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_core.config import CLASS_NAMES
from cxr_core.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "add_content_hashes",
    "class_weight_description",
    "class_weights",
    "count_table",
    "dataset_folder",
    "duplicate_groups",
    "fingerprint",
    "patient_id",
    "scan",
]

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".dcm")
SPLITS = ("train", "val", "test")
COLUMNS = ("path", "split", "label", "label_index", "patient_id", "bytes")

# Kaggle file names carry the patient: person1946_bacteria_4874.jpeg (PNEUMONIA),
# IM-0115-0001.jpeg and NORMAL2-IM-0393-0001-0002.jpeg (NORMAL; "-0002" is a further image).
_PATIENT_PATTERNS = (
    re.compile(r"^(person\d+)_", re.IGNORECASE),
    re.compile(r"^((?:NORMAL\d*-)?IM-\d+)-\d+", re.IGNORECASE),
)


def dataset_folder(root: str | Path) -> Path:
    """``root`` resolved, once it is known to be an existing folder (no listing: cheap).

    Raises:
        DataError: The root is missing or not a folder.
    """
    folder = Path(root).expanduser()
    if not folder.exists():
        raise DataError(f"The dataset folder {folder} does not exist.")
    if not folder.is_dir():
        raise DataError(f"The dataset path {folder} is not a folder.")
    return folder.resolve()


def scan(root: str | os.PathLike[str]) -> pd.DataFrame:
    """List the images of a dataset folder, without decoding or hashing them.

    Folder names and extensions are matched case-insensitively, hidden files are ignored and
    folders other than the splits and classes are skipped.

    Args:
        root: Folder holding ``train``, ``val`` and/or ``test``, each with ``NORMAL`` and
            ``PNEUMONIA`` subfolders of ``IMAGE_EXTENSIONS`` files.

    Returns:
        One row per image, sorted by split (``SPLITS`` order), label, then path, with columns
        ``path`` (absolute str), ``split``, ``label`` (a ``CLASS_NAMES`` entry), ``label_index``
        (0 or 1), ``patient_id`` (str) and ``bytes`` (file size).

    Raises:
        DataError: The root is missing or not a folder, has no split folder, a split folder lacks
            a class folder, or a class folder holds no images.
    """
    folder = dataset_folder(root)
    split_dirs = _named_subfolders(folder, SPLITS)
    if not split_dirs:
        raise DataError(
            f"No train, val or test folder was found in {folder} (expected "
            "ROOT/train/NORMAL/*.jpeg and ROOT/train/PNEUMONIA/*.jpeg)."
        )
    rows = []
    for split, split_dir in split_dirs.items():
        class_dirs = _named_subfolders(split_dir, CLASS_NAMES)
        missing = [name for name in CLASS_NAMES if name not in class_dirs]
        if missing:
            raise DataError(f"The split folder {split_dir} has no {' or '.join(missing)} folder.")
        for label_index, label in enumerate(CLASS_NAMES):
            for path, size in _list_images(class_dirs[label]):
                rows.append((path, split, label, label_index, patient_id(path, label), size))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _named_subfolders(folder: Path, names: tuple[str, ...]) -> dict[str, Path]:
    """Map each of ``names`` found in ``folder`` (any case, not hidden) to its subfolder."""
    found: dict[str, Path] = {}
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as error:
        raise DataError(f"The folder {folder} cannot be read ({error.strerror}).") from None
    wanted = {name.lower(): name for name in names}
    for entry in entries:
        name = wanted.get(entry.name.lower())
        if name is None or entry.name.startswith(".") or not entry.is_dir():
            continue
        if name in found:
            raise DataError(f"The folder {folder} has two folders named {name} in different case.")
        found[name] = Path(entry.path)
    return {name: found[name] for name in names if name in found}


def _list_images(folder: Path) -> list[tuple[str, int]]:
    """Return (path, size) of every non-hidden image file in ``folder``, sorted by name."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        images = [
            (entry.path, entry.stat().st_size)
            for entry in entries
            if not entry.name.startswith(".")
            and entry.name.lower().endswith(IMAGE_EXTENSIONS)
            and entry.is_file()
        ]
    except OSError as error:
        raise DataError(f"The folder {folder} cannot be read ({error.strerror}).") from None
    if not images:
        kinds = ", ".join(IMAGE_EXTENSIONS)
        raise DataError(f"The class folder {folder} contains no images ({kinds}).")
    return images


def patient_id(filename: str | os.PathLike[str], label: str) -> str:
    """Return the patient a Kaggle-named image belongs to.

    ``person1946_bacteria_4874.jpeg`` -> ``"person1946"``, ``IM-0115-0001-0002.jpeg`` ->
    ``"IM-0115"``, ``NORMAL2-IM-0393-0001.jpeg`` -> ``"NORMAL2-IM-0393"``. The Kaggle patterns
    are class-specific (``person`` names are PNEUMONIA images, ``IM`` names NORMAL ones), so
    they cannot collide across classes and are returned as they are. Any other name is its own
    patient: ``"<label>:<stem>"``, with the label so that ``NORMAL/001.png`` and
    ``PNEUMONIA/001.png`` stay two patients.

    Args:
        filename: File name or path of the image.
        label: Class folder of the image, e.g. ``"NORMAL"``.

    Returns:
        The patient id, a non-empty str.
    """
    name = Path(filename).name
    for pattern in _PATIENT_PATTERNS:
        match = pattern.match(name)
        if match:
            return match.group(1)
    return f"{label}:{Path(name).stem}"


def count_table(table: pd.DataFrame) -> pd.DataFrame:
    """Count images per split and class.

    Args:
        table: A :func:`scan` table (or part of one).

    Returns:
        Integer counts with one row per split present (``SPLITS`` order first) plus a
        ``"total"`` row, and one column per ``CLASS_NAMES`` entry plus a ``"total"`` column.
    """
    counts = pd.crosstab(table["split"], table["label"])
    present = list(counts.index)
    order = [s for s in SPLITS if s in present] + sorted(s for s in present if s not in SPLITS)
    counts = counts.reindex(index=order, columns=list(CLASS_NAMES), fill_value=0)
    counts["total"] = counts.sum(axis=1)
    counts.loc["total"] = counts.sum(axis=0)
    counts.index.name = "split"
    counts.columns.name = None
    return counts.astype(int)


def add_content_hashes(table: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``table`` with a ``content_hash`` column (BLAKE2b of the file bytes).

    Raises:
        DataError: A file cannot be read.
    """
    hashed = table.copy()
    hashed["content_hash"] = [_file_hash(path) for path in table["path"]]
    return hashed


def _file_hash(path: str) -> str:
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
    except OSError as error:
        raise DataError(f"The image {path} cannot be read ({error.strerror}).") from None


def duplicate_groups(table: pd.DataFrame) -> pd.DataFrame:
    """List the files whose bytes are identical to another file's.

    Args:
        table: A :func:`scan` table; content hashes are computed if it has none.

    Returns:
        One row per duplicated file, with columns ``duplicate_group`` (0, 1, ... in order of
        the groups' first path), ``content_hash``, ``path``, ``split``, ``label`` and
        ``patient_id``. A group of k files holds k * (k - 1) / 2 duplicate pairs.
    """
    if "content_hash" not in table:
        table = add_content_hashes(table)
    columns = ["content_hash", "path", "split", "label", "patient_id"]
    copies = table.loc[table["content_hash"].duplicated(keep=False), columns]
    copies = copies.sort_values("path", kind="stable")
    group = pd.factorize(copies["content_hash"])[0]
    copies.insert(0, "duplicate_group", group)
    return copies.sort_values(["duplicate_group", "path"], kind="stable").reset_index(drop=True)


def class_weights(labels: np.ndarray | list[int]) -> dict[int, float]:
    """Return balanced loss weights ``n / (2 * n_c)`` for labels 0 and 1.

    Args:
        labels: Integer class indices (0 = NORMAL, 1 = PNEUMONIA), any shape.

    Returns:
        ``{0: weight, 1: weight}``; a class with fewer images gets a weight above 1.

    Raises:
        DataError: A class is absent or a label is not 0 or 1.
    """
    values = np.asarray(labels).astype(int).ravel()
    classes = np.arange(len(CLASS_NAMES))
    if not np.isin(values, classes).all():
        raise DataError("Class labels must be 0 (NORMAL) or 1 (PNEUMONIA).")
    missing = [CLASS_NAMES[c] for c in classes if not (values == c).any()]
    if missing:
        raise DataError(f"Class weights need both classes, but there are no {missing[0]} labels.")
    weights = len(values) / (len(classes) * np.bincount(values, minlength=len(classes)))
    return {int(c): float(w) for c, w in zip(classes, weights, strict=True)}


def class_weight_description(weights: dict[int, float] | None) -> str:
    """Return e.g. ``"NORMAL 1.94, PNEUMONIA 0.67"`` for display, or ``"off"``."""
    if not weights:
        return "off"
    return ", ".join(f"{CLASS_NAMES[k]} {v:.2f}" for k, v in sorted(weights.items()))


def fingerprint(table: pd.DataFrame) -> str:
    """Return a short stable id of a set of images, for model metadata.

    It hashes ``split/label/file name`` and the size of every row, independent of row order and
    of where the dataset folder lives; renaming, adding, removing or resizing a file changes it.

    Returns:
        16 hex characters.
    """
    items = sorted(
        f"{split}/{label}/{Path(path).name}\t{size}"
        for path, split, label, size in zip(
            table["path"], table["split"], table["label"], table["bytes"], strict=True
        )
    )
    return hashlib.blake2b("\n".join(items).encode(), digest_size=8).hexdigest()

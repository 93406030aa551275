"""Find chest X-ray images on disk, split them by patient and feed them to Keras.

The layout is that of Kaggle's "Chest X-Ray Images (Pneumonia)" (Kermany, Zhang and Goldbaum
2018, Mendeley Data, CC BY 4.0): ``ROOT/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg``. A dataset
is one table (:func:`scan`) with a row per image: path, split, label, patient and size. Children
have several images, and some files are exact copies, so validation data is carved out of train
by patient and by file content (:func:`split_by_patient`), never by image.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cxr_core.config import CLASS_NAMES, DataConfig
from cxr_core.errors import ConfigError, DataError

# TensorFlow, scikit-learn and SciPy are imported by the functions that need them: listing,
# counting and auditing a dataset (the app's Home and Dataset pages) must not pay seconds of
# imports (benchmarks/app_latency.py).
if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "add_content_hashes",
    "class_weight_description",
    "class_weights",
    "count_table",
    "duplicate_groups",
    "evaluation_dataset",
    "fingerprint",
    "make_dataset",
    "patient_id",
    "resolve_splits",
    "scan",
    "split_by_patient",
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
# Images held in the shuffle buffer; the table is shuffled once beforehand, so a buffer smaller
# than the dataset still mixes the classes (a sorted table starts with every NORMAL image).
_SHUFFLE_BUFFER = 2048


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
    folder = Path(root).expanduser()
    if not folder.exists():
        raise DataError(f"The dataset folder {folder} does not exist.")
    if not folder.is_dir():
        raise DataError(f"The dataset path {folder} is not a folder.")
    folder = folder.resolve()
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


def split_by_patient(
    table: pd.DataFrame, val_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out about ``val_fraction`` of the images, keeping patients and copies together.

    Images that share a patient id or file content form one group (connected components), and
    scikit-learn's ``StratifiedGroupKFold`` deals whole groups out while keeping the class
    ratio. The fraction is met by taking k of n folds (0.15 -> 3 of 20).

    Args:
        table: Images to split (usually the train rows of :func:`scan`); content hashes are
            computed if it has none.
        val_fraction: Share of images for validation, in (0, 1).
        seed: Seed of the fold assignment; the same table and seed give the same split.

    Returns:
        ``(train_table, val_table)``, each with a fresh index, rows in their original order.

    Raises:
        ConfigError: ``val_fraction`` is outside (0, 1).
        DataError: The table lacks one class or has too few patients to split.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be in (0, 1). Received: val_fraction={val_fraction}")
    if "content_hash" not in table:
        table = add_content_hashes(table)
    _require_classes(table, "The images to split")
    groups = _leakage_groups(table)
    labels = table["label_index"].to_numpy()
    n_splits, n_val_folds = _fold_counts(val_fraction, _groups_per_class(groups, labels))
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    in_val = np.zeros(len(table), dtype=bool)
    for _, val_rows in itertools.islice(folds.split(table, labels, groups), n_val_folds):
        in_val[val_rows] = True
    return table[~in_val].reset_index(drop=True), table[in_val].reset_index(drop=True)


def _leakage_groups(table: pd.DataFrame) -> np.ndarray:
    """Component id per row of the graph linking rows that share a patient or a content hash."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = np.arange(len(table))
    # An edge from each row to the first row with the same patient, and with the same bytes.
    firsts = [
        pd.Series(rows).groupby(pd.factorize(table[column])[0]).transform("min").to_numpy()
        for column in ("patient_id", "content_hash")
    ]
    edges = (np.ones(2 * len(rows)), (np.tile(rows, 2), np.concatenate(firsts)))
    graph = coo_matrix(edges, shape=(len(rows), len(rows)))
    return connected_components(graph, directed=False)[1]


def _groups_per_class(groups: np.ndarray, labels: np.ndarray) -> int:
    """Fewest distinct groups holding any one class."""
    return min(len(np.unique(groups[labels == index])) for index in range(len(CLASS_NAMES)))


def _fold_counts(val_fraction: float, max_splits: int) -> tuple[int, int]:
    """Return (n, k), n <= min(20, max_splits), with k / n closest to ``val_fraction``."""
    limit = min(20, max_splits)
    if limit < 2:
        raise DataError("There are too few patients of each class to hold some out for validation.")
    pairs = [(n, k) for n in range(2, limit + 1) for k in range(1, n)]
    return min(pairs, key=lambda pair: (abs(pair[1] / pair[0] - val_fraction), pair[0]))


def resolve_splits(
    table: pd.DataFrame, data_config: DataConfig
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Choose the training and validation images of a run.

    The dataset's own val split is used if it has at least ``data_config.min_val_images``
    images; otherwise validation is a patient-grouped split of train (:func:`split_by_patient`
    with ``val_fraction`` and ``seed``). ``limit_per_class`` then keeps a seeded sample of at
    most that many train images per class, and the same share of each class's validation images.

    Args:
        table: A :func:`scan` table.
        data_config: Split and sampling settings.

    Returns:
        ``(train_table, val_table, description)``; the description is one line for people, e.g.
        ``"train: 4433 images; validation: 783 images from a patient-grouped split of train
        (the dataset's val split has 16)"``.

    Raises:
        DataError: The table has no train images, or train or validation lacks a class.
    """
    train = table[table["split"] == "train"]
    if train.empty:
        raise DataError("The dataset has no train split, which training needs.")
    _require_classes(train, "The train split")
    own_val = table[table["split"] == "val"]
    if len(own_val) and len(own_val) >= data_config.min_val_images:
        val, source = own_val, "the dataset's own val split"
    else:
        train, val = split_by_patient(train, data_config.val_fraction, data_config.seed)
        source = f"a patient-grouped split of train (the dataset's val split has {len(own_val)})"
    limit = data_config.limit_per_class
    limited = limit is not None and bool((train["label"].value_counts() > limit).any())
    if limited:
        train, val = _limit_per_class(train, val, limit, data_config.seed)
        source += f", sampled like train (at most {limit} images per class)"
    _require_classes(val, "The validation data")
    description = f"train: {len(train)} images; validation: {len(val)} images from {source}"
    return train.reset_index(drop=True), val.reset_index(drop=True), description


def _limit_per_class(
    train: pd.DataFrame, val: pd.DataFrame, limit: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sample at most ``limit`` train images per class, and validation in the same proportion."""
    kept_train, kept_val = [], []
    for label in CLASS_NAMES:
        train_rows = train[train["label"] == label]
        val_rows = val[val["label"] == label]
        share = min(1.0, limit / len(train_rows))
        kept_train.append(train_rows.sample(min(limit, len(train_rows)), random_state=seed))
        kept_val.append(val_rows.sample(math.ceil(share * len(val_rows)), random_state=seed))
    return pd.concat(kept_train).sort_index(), pd.concat(kept_val).sort_index()


def _require_classes(table: pd.DataFrame, what: str) -> None:
    missing = [name for name in CLASS_NAMES if not (table["label"] == name).any()]
    if missing:
        raise DataError(f"{what} has no {' or '.join(missing)} images.")


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


def make_dataset(
    table: pd.DataFrame, image_size: int, data_config: DataConfig, training: bool
) -> tf.data.Dataset:
    """Build the ``tf.data`` pipeline that feeds a table's images to a model.

    read -> decode (greyscale) -> :func:`~cxr_core.imaging.preprocess.to_model_input` -> cache (if
    ``data_config.cache``) -> [training: shuffle, reshuffled each epoch] -> batch ->
    [training with ``corruption_augment`` > 0: :func:`~cxr_core.imaging.corruptions.corrupt_batch`]
    ->
    [training with ``augment``, ``acquisition_augment`` or ``framing_augment`` > 0:
    :func:`~cxr_core.data.augment.make_augmenter`] ->
    prefetch. Without training, the order is the table's. JPEG and PNG files only.

    Args:
        table: A :func:`scan` table (or part of one), non-empty.
        image_size: Side of the square model input.
        data_config: Batch size, seed, augmentation and caching settings.
        training: Shuffle and augment (for fitting) or not (for validation and testing).

    Returns:
        Dataset of ``(images, labels)``: images float32 ``(batch, image_size, image_size, 3)``
        in [0, 255], labels float32 ``(batch,)`` (1.0 = PNEUMONIA); the last batch may be smaller.

    Raises:
        DataError: The table is empty or lists DICOM files.
        ConfigError: ``image_size`` is not a positive integer.
    """
    _check_decodable(table)
    if not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(
            f"image_size must be a positive integer. Received: image_size={image_size!r}"
        )
    import tensorflow as tf

    from cxr_core.data.augment import make_augmenter

    paths = table["path"].to_numpy(dtype=str)
    labels = table["label_index"].to_numpy(dtype=np.float32)
    if training:
        order = np.random.default_rng(data_config.seed).permutation(len(table))
        paths, labels = paths[order], labels[order]
    autotune = tf.data.AUTOTUNE
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    # Order-preserving in training too, so that a seed gives the same epochs.
    dataset = dataset.map(
        lambda path, label: (_load_grey(path, image_size), label),
        num_parallel_calls=autotune,
        deterministic=True,
    )
    if data_config.cache:
        dataset = dataset.cache()
    if training:
        buffer = min(len(table), _SHUFFLE_BUFFER)
        dataset = dataset.shuffle(buffer, seed=data_config.seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(data_config.batch_size)
    if training and data_config.corruption_augment > 0:
        dataset = dataset.map(
            _corruption_augmenter(data_config.corruption_augment, data_config.seed),
            num_parallel_calls=autotune,
        )
    augmenter = None
    d = data_config
    if training and (d.augment > 0 or d.acquisition_augment > 0 or d.framing_augment > 0):
        augmenter = make_augmenter(
            d.augment,
            d.horizontal_flip,
            seed=d.seed,
            acquisition=d.acquisition_augment,
            framing=d.framing_augment,
        )
    dataset = dataset.map(
        lambda images, labels: (_to_model_batch(images, augmenter), labels),
        num_parallel_calls=autotune,
        deterministic=not training,
    )
    return dataset.prefetch(autotune)


def _corruption_augmenter(probability: float, seed: int):
    """A ``dataset.map`` function: stress-suite corruptions (choice families) on a grey batch."""
    import tensorflow as tf

    from cxr_core.imaging.corruptions import corrupt_batch

    generator = tf.random.Generator.from_seed(seed)

    def corrupt(images: np.ndarray, batch_seed: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(int(batch_seed) & 0x7FFFFFFFFFFFFFFF)  # signed int64
        return corrupt_batch(images, rng, probability)

    def apply(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch_seed = generator.uniform_full_int([], dtype=tf.int64)
        corrupted = tf.numpy_function(corrupt, [images, batch_seed], tf.float32)
        return tf.ensure_shape(corrupted, images.shape), labels

    return apply


def evaluation_dataset(table: pd.DataFrame, image_size: int, batch_size: int) -> tf.data.Dataset:
    """:func:`make_dataset` for scoring: the table's order, no augmentation, no caching."""
    config = DataConfig(batch_size=batch_size, cache=False, augment=0.0, acquisition_augment=0.0)
    return make_dataset(table, int(image_size), config, training=False)


def _check_decodable(table: pd.DataFrame) -> None:
    if table.empty:
        raise DataError("There are no images to load.")
    dicom = table["path"].str.lower().str.endswith(".dcm")
    if dicom.any():
        first = table.loc[dicom, "path"].iloc[0]
        raise DataError(
            f"{int(dicom.sum())} DICOM files (such as {first}) cannot be used for training or "
            "evaluation, which read only JPEG and PNG files; convert them to PNG first."
        )


def _load_grey(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Read one file and return its model input's first channel, (s, s, 1) float32."""
    import tensorflow as tf

    from cxr_core.errors import InvalidImageError
    from cxr_core.imaging.preprocess import to_model_input
    from cxr_core.imaging.scoring import decode_for_model

    def decode(name: bytes) -> np.ndarray:
        try:
            return np.asarray(decode_for_model(name.decode()).pixels)
        except InvalidImageError as error:
            # tf.numpy_function turns a ValueError into InvalidArgumentError, which training
            # reports as a DataError naming the file; any other exception would be "Unknown".
            raise ValueError(f"{Path(name.decode()).name}: {error}") from None

    # The decoder of every score (cxr_core.imaging.scoring), so training sees the pixels that
    # Diagnose,
    # predict and evaluate see: tf.io.decode_image's JPEG grey differed by up to 0.02 in score.
    image = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
    image.set_shape([None, None])
    # to_model_input repeats one grey channel three times; caching and shuffling one copy
    # holds a third of the memory (about 1 GB instead of 3 GB for the Kaggle train at 224).
    return to_model_input(image, image_size)[..., :1]


def _to_model_batch(images: tf.Tensor, augmenter: object | None) -> tf.Tensor:
    """(batch, s, s, 1) grey -> augmented if an augmenter is given -> (batch, s, s, 3)."""
    import tensorflow as tf

    if augmenter is not None:
        images = augmenter(images, training=True)
    return tf.repeat(images, 3, axis=-1)

"""Training and validation images of a run, split by patient and by file content.

:func:`split_by_patient` holds out a share of a :func:`~cxr_core.data.tables.scan` table so that
no patient and no file's bytes appear on both sides; :func:`resolve_splits` decides between the
dataset's own val split and that patient-grouped split, and samples a run's images per class.
scikit-learn and SciPy are imported by the functions that need them.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from cxr_core.config import CLASS_NAMES, DataConfig
from cxr_core.data.tables import add_content_hashes
from cxr_core.errors import ConfigError, DataError

__all__ = ["resolve_splits", "split_by_patient"]


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

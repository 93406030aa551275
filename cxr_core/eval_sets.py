"""Which images to evaluate a saved model on, and its scores on them.

A model's honest test is on images it never saw. :func:`evaluation_sets` offers the dataset's
own splits, each flagged when the model trained or was selected on it, plus the validation
split the model was selected on, rebuilt from the ``run_config`` saved in its metadata with
:func:`cxr_core.data.resolve_splits` (the same patient-grouped split, seed and sampling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import data
from .config import CLASS_NAMES, RunConfig
from .errors import CXRError, DataError
from .sidecar import ModelMetadata

if TYPE_CHECKING:  # listing the sets (the app's Evaluate page) does not import TensorFlow
    import keras

__all__ = ["VALIDATION", "EvalSet", "evaluation_sets", "predict_table", "sample_per_class"]

#: Key of the rebuilt validation split in :func:`evaluation_sets`.
VALIDATION = "validation"


@dataclass(frozen=True, eq=False)
class EvalSet:
    """A labelled set of images to evaluate on.

    Attributes:
        key: ``"validation"`` or a split name such as ``"test"``.
        label: How a picker shows it.
        table: Its rows of the :func:`cxr_core.data.scan` table.
        note: One or two plain sentences on what the numbers on it mean.
        optimistic: Whether the model trained or was selected on these images.
    """

    key: str
    label: str
    table: pd.DataFrame
    note: str
    optimistic: bool


def _validation_set(
    table: pd.DataFrame, config: RunConfig, metadata: ModelMetadata
) -> tuple[EvalSet | None, pd.DataFrame | None]:
    """The rebuilt validation set and the rebuilt training rows (None, None if impossible)."""
    try:
        train, val, description = data.resolve_splits(table, config.data)
    except CXRError:
        return None, None
    own = "dataset's own val split" in description
    label = (
        "validation (the dataset's val split this model was selected on)"
        if own
        else "validation (the patient-grouped split this model was selected on)"
    )
    note = (
        f"Rebuilt from the model's training settings: {description}. The best epoch and the "
        "decision threshold were chosen on these images, so metrics here are somewhat "
        "optimistic."
    )
    stored = metadata.text("data_fingerprint")
    if stored and stored != data.fingerprint(table):
        note += (
            " This dataset differs from the one the model was trained on, so this is not "
            "exactly the split it was selected on."
        )
    return EvalSet(VALIDATION, label, val, note, optimistic=True), train


def _split_set(split: str, rows: pd.DataFrame, trained_on: pd.DataFrame | None) -> EvalSet:
    if trained_on is None:
        seen = split == "train"  # no run settings: assume the usual Kaggle training split
        how = "probably trained on"
    else:
        seen = bool(rows["path"].isin(trained_on["path"]).any())
        how = "trained on"
    if seen:
        note = (
            f"The model {how} images of this split: metrics on images a model trained on are "
            "optimistic and say little about new patients."
        )
    else:
        note = "The model did not train on this split, as far as its metadata tells."
    label = f"{split} ({len(rows)} images)" + (" - seen in training" if seen else "")
    return EvalSet(split, label, rows.reset_index(drop=True), note, optimistic=seen)


def evaluation_sets(table: pd.DataFrame, metadata: ModelMetadata) -> list[EvalSet]:
    """List the sets a model can be evaluated on, the rebuilt validation split first.

    Args:
        table: A :func:`cxr_core.data.scan` table (hashed for the patient-grouped split when
            the model's validation split is rebuilt).
        metadata: The model's checked sidecar; its ``recipe`` (if any) rebuilds the validation
            split and tells which images it trained on.

    Returns:
        ``EvalSet`` s: ``"validation"`` when it can be rebuilt from ``run_config``, then one per
        split of the dataset in ``data.SPLITS`` order.
    """
    sets: list[EvalSet] = []
    trained_on = None
    config = metadata.recipe
    if config is not None:
        validation, trained_on = _validation_set(table, config, metadata)
        if validation is not None:
            sets.append(validation)
    present = list(table["split"].unique())
    ordered = [s for s in data.SPLITS if s in present] + sorted(set(present) - set(data.SPLITS))
    for split in ordered:
        sets.append(_split_set(split, table[table["split"] == split], trained_on))
    return sets


def sample_per_class(table: pd.DataFrame, limit: int | None, seed: int = 0) -> pd.DataFrame:
    """Keep a seeded sample of at most ``limit`` rows of each class, in the table's order.

    Args:
        table: Rows with a ``label`` column.
        limit: Most rows per class; ``None`` or 0 keeps every row.
        seed: Seed of the sample.

    Returns:
        The kept rows with a fresh index.
    """
    if not limit:
        return table.reset_index(drop=True)
    parts = [
        rows.sample(min(int(limit), len(rows)), random_state=seed)
        for label in CLASS_NAMES
        if len(rows := table[table["label"] == label])
    ]
    if not parts:
        return table.iloc[0:0].reset_index(drop=True)
    return pd.concat(parts).sort_index().reset_index(drop=True)


def predict_table(
    model: keras.Model, table: pd.DataFrame, image_size: int, batch_size: int = 32
) -> np.ndarray:
    """Score every image of a table with a loaded model.

    Images go through :func:`cxr_core.data.make_dataset` without shuffling, augmentation or
    caching, so the order of the scores is the table's.

    Args:
        model: A classifier from :func:`cxr_core.model.load_model`.
        table: Rows of a :func:`cxr_core.data.scan` table (JPEG and PNG files).
        image_size: The model's input side (``ModelMetadata.image_size``).
        batch_size: Images per forward pass.

    Returns:
        float32 array ``(len(table),)`` of PNEUMONIA probabilities in [0, 1].

    Raises:
        DataError: The table is empty or lists DICOM files.
    """
    from .model import predict_scores

    if table.empty:
        raise DataError("There are no images to evaluate.")
    return predict_scores(model, data.evaluation_dataset(table, image_size, batch_size))

"""Which images to evaluate a saved model on, and its scores on them.

A model's honest test is on images it never saw. :func:`evaluation_sets` offers the dataset's
own splits, each flagged when the model trained or was selected on it, plus the validation
split the model was selected on, rebuilt from the ``run_config`` saved in its metadata with
:func:`cxr_core.data.splits.resolve_splits` (the same patient-grouped split, seed and sampling).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cxr_core import data
from cxr_core.config import DataConfig, RunConfig
from cxr_core.errors import CXRError, DataError
from cxr_core.sidecar import ModelMetadata

if TYPE_CHECKING:  # listing the sets (the app's Evaluate page) does not import TensorFlow
    import keras

__all__ = [
    "VALIDATION",
    "EvalSet",
    "ScoringProgress",
    "evaluation_sets",
    "per_image_rows",
    "predict_table",
    "stratified_sample",
]

#: :func:`cxr_core.data.splits.resolve_splits` or a stand-in: (table, settings) -> (train, val,
#: text).
Resolver = Callable[[pd.DataFrame, DataConfig], tuple[pd.DataFrame, pd.DataFrame, str]]
#: Key of the rebuilt validation split in :func:`evaluation_sets`.
VALIDATION = "validation"


@dataclass(frozen=True, eq=False)
class EvalSet:
    """A labelled set of images to evaluate on.

    Attributes:
        key: ``"validation"`` or a split name such as ``"test"``.
        label: How a picker shows it.
        table: Its rows of the :func:`cxr_core.data.tables.scan` table.
        note: One or two plain sentences on what the numbers on it mean.
        optimistic: Whether the model trained or was selected on these images.
    """

    key: str
    label: str
    table: pd.DataFrame
    note: str
    optimistic: bool


def _validation_set(
    table: pd.DataFrame, config: RunConfig, metadata: ModelMetadata, resolve: Resolver
) -> tuple[EvalSet | None, pd.DataFrame | None]:
    """The rebuilt validation set and the rebuilt training rows (None, None if impossible)."""
    try:
        train, val, description = resolve(table, config.data)
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


def evaluation_sets(
    table: pd.DataFrame, metadata: ModelMetadata, resolve: Resolver = data.resolve_splits
) -> list[EvalSet]:
    """List the sets a model can be evaluated on, the rebuilt validation split first.

    Args:
        table: A :func:`cxr_core.data.tables.scan` table (hashed for the patient-grouped split when
            the model's validation split is rebuilt).
        metadata: The model's checked sidecar; its ``recipe`` (if any) rebuilds the validation
            split and tells which images it trained on.
        resolve: :func:`cxr_core.data.splits.resolve_splits` or a function with its signature and
            results, such as :func:`cxr_core.evaluation.score_cache.cached_splits`'s.

    Returns:
        ``EvalSet`` s: ``"validation"`` when it can be rebuilt from ``run_config``, then one per
        split of the dataset in ``data.SPLITS`` order.
    """
    sets: list[EvalSet] = []
    trained_on = None
    config = metadata.recipe
    if config is not None:
        validation, trained_on = _validation_set(table, config, metadata, resolve)
        if validation is not None:
            sets.append(validation)
    present = list(table["split"].unique())
    ordered = [s for s in data.SPLITS if s in present] + sorted(set(present) - set(data.SPLITS))
    for split in ordered:
        sets.append(_split_set(split, table[table["split"] == split], trained_on))
    return sets


def stratified_sample(table: pd.DataFrame, size: int | None, seed: int = 0) -> pd.DataFrame:
    """Keep a seeded sample of at most ``size`` rows with the table's own class ratio.

    Each class keeps its share of ``size`` (largest remainders round up, and every class present
    keeps at least one row), so the prevalence of the sample is the table's, within one image.
    Sampling classes equally instead would set the prevalence to 0.5 and bias PPV, NPV and ECE.

    Args:
        table: Rows with a ``label`` column.
        size: Most rows in all; ``None``, 0 or a size of at least ``len(table)`` keeps every row.
        seed: Seed of the sample.

    Returns:
        The kept rows in the table's order, with a fresh index.
    """
    if not size or size >= len(table):
        return table.reset_index(drop=True)
    counts = table["label"].value_counts()
    shares = counts / len(table) * int(size)
    kept = np.maximum(np.floor(shares).astype(int), 1)
    order = (shares - np.floor(shares)).sort_values(ascending=False).index
    for label in order[: max(0, int(size) - int(kept.sum()))]:
        kept[label] += 1
    parts = [
        table[table["label"] == label].sample(min(int(n), int(counts[label])), random_state=seed)
        for label, n in kept.items()
    ]
    return pd.concat(parts).sort_index().reset_index(drop=True)


@dataclass(frozen=True)
class ScoringProgress:
    """How far the scoring of an image set has got.

    Attributes:
        done: Images scored so far.
        total: Images to score.
        elapsed: Seconds since the first batch was asked for (model start-up included).
    """

    done: int
    total: int
    elapsed: float

    @property
    def fraction(self) -> float:
        """Share of the images scored, in [0, 1]."""
        return self.done / self.total if self.total else 1.0

    @property
    def images_per_second(self) -> float | None:
        """Images scored per second so far; None before the first batch."""
        return self.done / self.elapsed if self.done and self.elapsed > 0 else None

    @property
    def seconds_left(self) -> float | None:
        """Estimated seconds until every image is scored, at the speed so far; None if unknown."""
        rate = self.images_per_second
        return (self.total - self.done) / rate if rate else None


def predict_table(
    model: keras.Model,
    table: pd.DataFrame,
    image_size: int,
    batch_size: int = 32,
    progress: Callable[[ScoringProgress], None] | None = None,
) -> np.ndarray:
    """Score every image of a table with a loaded model.

    Images go through :func:`cxr_core.imaging.scoring.score_files`, the decode and preprocessing of
    Diagnose and ``predict``, so a file gets the same probability here as there; the order of
    the scores is the table's.

    Args:
        model: A classifier from :func:`cxr_core.model.build.load_model`.
        table: Rows of a :func:`cxr_core.data.tables.scan` table.
        image_size: The model's input side (``ModelMetadata.image_size``).
        batch_size: Images per forward pass.
        progress: Called with a :class:`ScoringProgress` once before the first batch and after
            every batch.

    Returns:
        float32 array ``(len(table),)`` of PNEUMONIA probabilities in [0, 1].

    Raises:
        DataError: The table is empty or an image cannot be decoded.
    """
    from cxr_core.imaging.scoring import score_files

    if table.empty:
        raise DataError("There are no images to evaluate.")
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(ScoringProgress(done, total, time.perf_counter() - start))

    paths = [str(path) for path in table["path"]]
    return score_files(model, paths, int(image_size), batch_size, progress=report)


def per_image_rows(table: pd.DataFrame, scores: np.ndarray, threshold: float) -> list[dict]:
    """Each image's probability, true label and the decision at ``threshold``.

    Args:
        table: The scored rows of a :func:`cxr_core.data.tables.scan` table.
        scores: Their PNEUMONIA probabilities, in the table's order.
        threshold: The decision threshold (PNEUMONIA when ``probability >= threshold``).

    Returns:
        One dict per image: ``file`` (``LABEL/name``, relative to the split, never an absolute
        server path), ``probability`` (6 decimals), ``label`` (the truth), ``decision`` and
        ``correct``.
    """
    from pathlib import Path

    from cxr_core.config import CLASS_NAMES

    rows = []
    for path, label, score in zip(table["path"], table["label"], scores, strict=True):
        decision = CLASS_NAMES[1] if float(score) >= threshold else CLASS_NAMES[0]
        rows.append(
            {
                "file": f"{label}/{Path(str(path)).name}",
                "probability": round(float(score), 6),
                "label": str(label),
                "decision": decision,
                "correct": decision == label,
            }
        )
    return rows

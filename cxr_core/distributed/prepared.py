"""The train and validation inputs of one run, as prepared for ``fit``.

:func:`cxr_core.training.phases.prepare_data` prepares them on one device; under several workers
:func:`cxr_core.distributed.multiworker.shard_inputs` returns a copy pointed at this worker's share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import tensorflow as tf

__all__ = ["PreparedData"]


@dataclass(frozen=True)
class PreparedData:
    """A run's tables and datasets.

    Attributes:
        train_table: The training images (one row each: path, label, patient...).
        val_table: The validation images; all of them choose the threshold.
        description: How the validation images were chosen, for the status and the sidecar.
        fingerprint: Short stable id of the scanned images
            (:func:`cxr_core.data.tables.fingerprint`).
        train: The dataset ``fit`` trains on (this worker's share under several workers).
        val: The whole validation dataset, unshuffled.
        cache: Where decoded images are cached: ``"memory"``, ``"off"`` or ``"off: why"``.
        class_weight: Loss weight per label 0 and 1, or None when class weighting is off.
        fit_val: The validation share ``fit`` reports on under several workers, else None.
    """

    train_table: pd.DataFrame
    val_table: pd.DataFrame
    description: str
    fingerprint: str
    train: tf.data.Dataset
    val: tf.data.Dataset
    cache: str
    class_weight: dict[int, float] | None
    fit_val: tf.data.Dataset | None = None

    @property
    def fit_validation(self) -> tf.data.Dataset:
        """The validation data ``fit`` reports on: this worker's share, or all of it."""
        return self.val if self.fit_val is None else self.fit_val

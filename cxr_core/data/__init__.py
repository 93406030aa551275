"""Datasets: ``tables`` (scan of the Kaggle layout, patients, counts, duplicates, class weights),
``splits`` (patient-grouped training and validation images), ``pipeline`` (the tf.data
pipeline), ``audit``, ``augment`` (training augmentation) and ``feedback`` (a clinician's answers
saved as a dataset). May import the layers below it (top-level modules, ``stats``, ``imaging``,
``explain``, ``runs``).

The public names of ``tables``, ``splits`` and ``pipeline`` are re-exported here, so callers
write ``from cxr_core import data`` and ``data.scan``, ``data.resolve_splits``,
``data.make_dataset``; none of the three imports TensorFlow, scikit-learn or SciPy at import time.
"""

from cxr_core.data.pipeline import evaluation_dataset, make_dataset
from cxr_core.data.splits import resolve_splits, split_by_patient
from cxr_core.data.tables import (
    IMAGE_EXTENSIONS,
    SPLITS,
    add_content_hashes,
    class_weight_description,
    class_weights,
    count_table,
    dataset_folder,
    duplicate_groups,
    fingerprint,
    patient_id,
    scan,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "add_content_hashes",
    "class_weight_description",
    "class_weights",
    "count_table",
    "dataset_folder",
    "duplicate_groups",
    "evaluation_dataset",
    "fingerprint",
    "make_dataset",
    "patient_id",
    "resolve_splits",
    "scan",
    "split_by_patient",
]

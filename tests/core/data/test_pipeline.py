"""Tests of cxr_core.data.pipeline and cxr_core.data.augment: the tf.data pipeline's order,
pixels and shuffling, augmentation, refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from cxr_core import data
from cxr_core.config import DataConfig
from cxr_core.data.augment import make_augmenter
from cxr_core.errors import ConfigError, DataError
from cxr_core.imaging.preprocess import to_model_input
from cxr_core.imaging.scoring import decode_for_model
from tests.core.data.trees import make_tree

QUICK = DataConfig(batch_size=5, augment=0.0, acquisition_augment=0.0, cache=False)


def _reference_image(path: str, size: int) -> np.ndarray:
    # The decoder of every score (Diagnose, predict, evaluate), not tf.io.decode_image, whose
    # fast integer IDCT gave other grey levels.
    return to_model_input(decode_for_model(path).pixels, size).numpy()


def _images(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    batches = list(dataset.as_numpy_iterator())
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _positions(images: np.ndarray, reference: np.ndarray) -> list[int]:
    """Index in ``reference`` of each image, or -1 where it matches none or several."""
    matches = [
        np.flatnonzero(np.abs(reference - image).max(axis=(1, 2, 3)) < 1e-4) for image in images
    ]
    return [int(m[0]) if len(m) == 1 else -1 for m in matches]


# --- make_dataset and augmentation --------------------------------------------------------------


def test_make_dataset_for_evaluation_keeps_order_and_matches_the_shared_preprocessing(
    tiny_dataset,
):
    table = data.scan(tiny_dataset)

    batches = list(data.make_dataset(table, 48, QUICK, training=False).as_numpy_iterator())
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])

    assert [b[0].shape for b in batches] == [(5, 48, 48, 3)] * 6 + [(2, 48, 48, 3)]
    assert images.dtype == np.float32 and labels.dtype == np.float32
    assert labels.tolist() == table["label_index"].astype(float).tolist()
    assert images.min() >= 0 and images.max() <= 255
    for row in (0, 13, len(table) - 1):
        expected = _reference_image(table["path"].iloc[row], 48)
        np.testing.assert_allclose(images[row], expected, atol=1e-4)


def test_make_dataset_for_training_yields_every_image_once_reshuffled_each_epoch(tiny_dataset):
    table = data.scan(tiny_dataset)
    config = dataclasses.replace(QUICK, cache=True)
    dataset = data.make_dataset(table, 32, config, training=True)

    first, first_labels = _images(dataset)
    second, _ = _images(dataset)
    clean, clean_labels = _images(data.make_dataset(table, 32, QUICK, training=False))

    positions = _positions(first, clean)
    assert sorted(positions) == list(range(len(table)))
    assert first_labels.tolist() == clean_labels[positions].tolist()
    assert _positions(second, clean) != positions


def test_augmentation_changes_training_pixels_but_never_evaluation_pixels(tiny_dataset):
    table = data.scan(tiny_dataset).iloc[:6]
    strong = dataclasses.replace(QUICK, augment=2.0, batch_size=6, horizontal_flip=True)
    clean, _ = _images(data.make_dataset(table, 32, QUICK, training=False))

    evaluated, _ = _images(data.make_dataset(table, 32, strong, training=False))
    trained, _ = _images(data.make_dataset(table, 32, strong, training=True))

    np.testing.assert_array_equal(evaluated, clean)
    closest = [np.abs(clean - image).max(axis=(1, 2, 3)).min() for image in trained]
    assert min(closest) > 1.0
    assert trained.min() >= 0 and trained.max() <= 255
    np.testing.assert_array_equal(trained[..., 0], trained[..., 2])


def test_make_dataset_rejects_dicom_files_up_front(tmp_path):
    root = make_tree(tmp_path, {"train/NORMAL/a.png": b"x", "train/PNEUMONIA/b.dcm": b"x"})

    with pytest.raises(DataError, match="DICOM files .* convert them to PNG"):
        data.make_dataset(data.scan(root), 32, QUICK, training=False)


def test_make_dataset_rejects_an_empty_table(tiny_dataset):
    with pytest.raises(DataError, match="no images"):
        data.make_dataset(data.scan(tiny_dataset).iloc[:0], 32, QUICK, training=False)


def test_augmenter_keeps_extreme_pixels_in_range_and_is_identity_outside_training():
    images = np.zeros((4, 32, 32, 3), np.float32)
    images[:, :, 16:] = 255.0
    augmenter = make_augmenter(2.0, horizontal_flip=True, seed=1)

    trained = augmenter(images, training=True).numpy()
    inferred = augmenter(images, training=False).numpy()

    assert trained.shape == images.shape
    assert trained.min() >= 0 and trained.max() <= 255
    assert not np.array_equal(trained, images)
    np.testing.assert_array_equal(inferred, images)


@pytest.mark.parametrize("strength", [-0.5, 2.5, True])
def test_make_augmenter_rejects_strength_outside_0_2(strength):
    with pytest.raises(ConfigError, match="strength"):
        make_augmenter(strength)

"""The ``tf.data`` pipeline that feeds a table's images to a Keras model.

:func:`make_dataset` reads, decodes (through :mod:`cxr_core.imaging.scoring`, the decoder of
every score), caches, shuffles, batches and augments the images of a
:func:`~cxr_core.data.tables.scan` table; :func:`evaluation_dataset` is its scoring form.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cxr_core.config import DataConfig
from cxr_core.errors import ConfigError, DataError

# TensorFlow is imported by the functions that need it: listing, counting and auditing a
# dataset (the app's Home and Dataset pages) must not pay seconds of imports
# (benchmarks/app_latency.py).
if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["evaluation_dataset", "make_dataset"]

# Images held in the shuffle buffer; the table is shuffled once beforehand, so a buffer smaller
# than the dataset still mixes the classes (a sorted table starts with every NORMAL image).
_SHUFFLE_BUFFER = 2048


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

"""The one decode-and-preprocess path behind every score.

Diagnose, ``predict``, ``evaluate``, the Evaluate page, the stress suite and training's final
validation figures all turn a file into model input the same way, so one file gets one
probability wherever it is scored (``tests/test_scoring.py`` checks it to 1e-6):

    file -> :func:`decode_for_model` (``imaging.read_image``; a JPEG larger than
    ``DECODE_SIDE`` decoded reduced by libjpeg, then anything larger shrunk to
    ``DECODE_SIDE`` with area averaging) -> :func:`cxr_core.imaging.preprocess.to_model_input`
    (greyscale, antialiased resize to the model's side, three channels) -> the model's own
    scaling -> ``logit`` -> sigmoid.

Before this module, batches went through ``tf.io.decode_image`` and single files through
Pillow: the same file could score 0.64 on Evaluate and 0.675 on Diagnose. :func:`score_files`
is the batched form of :class:`cxr_core.inference.predictor.Predictor`'s scoring: files are decoded
on a
few threads while the model scores the previous batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cxr_core.errors import DataError, InvalidImageError
from cxr_core.imaging.decode import read_image
from cxr_core.imaging.decoded import DecodedImage

if TYPE_CHECKING:
    import keras

__all__ = ["DECODE_SIDE", "decode_for_model", "input_batches", "score_files", "shrink"]

#: Largest side of the decoded image the model (and Diagnose's display) starts from.
DECODE_SIDE = 1024
_WORKERS = max(1, min(4, os.cpu_count() or 1))


def shrink(image: np.ndarray, side: int = DECODE_SIDE) -> np.ndarray:
    """Scale ``image`` down (area averaging) so its longer side is at most ``side``.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array.
        side: Longest side allowed, in pixels.

    Returns:
        ``image`` itself when it already fits, else a resized copy of the same dtype.
    """
    import cv2

    scale = side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def decode_for_model(source: bytes | str | Path, filename: str | None = None) -> DecodedImage:
    """Decode a JPEG, PNG or DICOM file the way every score sees it.

    Args:
        source: The file's bytes or its path.
        filename: The original name, for error wording only.

    Returns:
        A :class:`~cxr_core.imaging.decoded.DecodedImage` whose ``pixels`` are ``(H, W)`` uint8 with
        ``max(H, W) <= DECODE_SIDE``; ``info`` keeps the stored file's width and height.

    Raises:
        InvalidImageError: The file is not a usable image (the message says why).
    """
    decoded = read_image(source, filename=filename, max_side=DECODE_SIDE)
    pixels = shrink(decoded.pixels)
    if pixels is decoded.pixels:
        return decoded
    return replace(decoded, pixels=np.ascontiguousarray(pixels))


def _input_step(image_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """The compiled grey-uint8 -> model input step, the same ops as ``Predictor``'s."""
    import tensorflow as tf

    from cxr_core.imaging.preprocess import to_model_input

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.uint8)])
    def step(pixels: tf.Tensor) -> tf.Tensor:
        return to_model_input(pixels, image_size)

    return lambda grey: step(grey).numpy()


def input_batches(
    paths: Sequence[str | Path], image_size: int, batch_size: int = 32
) -> Iterator[np.ndarray]:
    """Model inputs of ``paths``, in order, a batch at a time.

    Args:
        paths: Image files (JPEG, PNG or DICOM).
        image_size: The model's input side.
        batch_size: Images per batch (the last may hold fewer).

    Yields:
        float32 ``(b, image_size, image_size, 3)`` arrays in [0, 255].

    Raises:
        DataError: A file cannot be decoded; the message names it and says why.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be a positive integer. Received: {batch_size!r}")
    prepare = _input_step(int(image_size))

    def load(path: str | Path) -> np.ndarray:
        try:
            return prepare(decode_for_model(path).pixels)
        except InvalidImageError as error:
            raise DataError(f"{Path(path).name}: {error}") from None

    with ThreadPoolExecutor(_WORKERS) as pool:
        starts = range(0, len(paths), batch_size)
        pending = None
        for start in starts:
            # Decode the next batch on the threads while the caller scores this one.
            ahead = pool.map(load, paths[start : start + batch_size])
            if pending is not None:
                yield np.stack(list(pending))
            pending = ahead
        if pending is not None:
            yield np.stack(list(pending))


def score_files(
    model: keras.Model,
    paths: Sequence[str | Path],
    image_size: int,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """PNEUMONIA probabilities of files, through :func:`input_batches` and the model's logit.

    The probability is ``sigmoid(logit)`` in float32, as
    :class:`~cxr_core.inference.predictor.Predictor`
    computes it, so a file scores the same here and on Diagnose.

    Args:
        model: A classifier with a ``logit`` layer (:func:`cxr_core.model.build.load_model`).
        paths: Image files, in the order the scores should be.
        image_size: The model's input side (``ModelMetadata.image_size``).
        batch_size: Images per forward pass.
        progress: Called with ``(images done, total)`` before the first batch and after each.

    Returns:
        float32 ``(len(paths),)`` in [0, 1].

    Raises:
        DataError: ``paths`` is empty or a file cannot be decoded.
    """
    import keras
    import tensorflow as tf

    if len(paths) == 0:
        raise DataError("There are no images to score.")
    logit_model = keras.Model(model.inputs, model.get_layer("logit").output)
    scores: list[np.ndarray] = []
    if progress is not None:
        progress(0, len(paths))
    for batch in input_batches(paths, image_size, batch_size):
        logits = logit_model(tf.constant(batch), training=False)
        scores.append(tf.sigmoid(tf.cast(logits[:, 0], tf.float32)).numpy())
        if progress is not None:
            progress(sum(len(s) for s in scores), len(paths))
    return np.concatenate(scores).astype(np.float32)

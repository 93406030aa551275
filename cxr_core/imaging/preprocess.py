"""The one place where decoded pixels become model input.

Training (``data.py``, inside ``tf.data``) and prediction (``gradcam.py``) both call
:func:`to_model_input`, so an uploaded full-resolution X-ray reaches the model exactly as the
training copies did: greyscale, resized to a square with antialiased bilinear filtering, and
repeated to three channels of raw 0-255 values. Backbone-specific scaling happens inside the
model, never here.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["to_model_input"]


def to_model_input(image: tf.Tensor | np.ndarray, image_size: int) -> tf.Tensor:
    """Turn one decoded image into the model's input.

    Colour images become greyscale (X-rays carry no colour; an RGB file is a storage accident
    that a model could otherwise learn as a shortcut), then the image is squashed to
    ``image_size`` x ``image_size`` (the Kaggle copies were made this way, without padding).

    Args:
        image: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` array of 0-255 values (uint8 or float).
        image_size: Side of the square output.

    Returns:
        float32 tensor of shape ``(image_size, image_size, 3)`` with values in [0, 255].
    """
    pixels = tf.convert_to_tensor(image)
    pixels = tf.cast(pixels, tf.float32)
    if pixels.shape.rank == 2:
        pixels = pixels[..., tf.newaxis]
    if pixels.shape[-1] == 3:
        pixels = tf.image.rgb_to_grayscale(pixels)
    pixels = tf.image.resize(pixels, (image_size, image_size), method="bilinear", antialias=True)
    pixels = tf.clip_by_value(pixels, 0.0, 255.0)
    return tf.repeat(pixels, 3, axis=-1)

"""Random changes to training images, so that a model learns the lungs, not one exposure.

Small rotations, zooms and shifts mimic patient positioning; contrast, brightness and gamma
changes mimic exposure and scanner settings. Horizontal flips are off unless asked for: the
heart sits on the left, and a mirrored chest is not an X-ray a model will ever see. Every
layer works on raw 0-255 pixels, so the output is still model input (see
:func:`cxr_core.preprocess.to_model_input`).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from .errors import ConfigError

__all__ = ["AUGMENT_AT_STRENGTH_1", "RandomGamma", "make_augmenter"]

#: Layer factors at strength 1; strength s multiplies them by s (s = 2 doubles them).
#: rotation is a fraction of a full turn (0.03 is about 11 degrees), zoom and translation are
#: fractions of the image side, contrast and brightness fractions of the 0-255 range, and gamma
#: the largest |log gamma|.
AUGMENT_AT_STRENGTH_1 = {
    "rotation": 0.03,
    "zoom": 0.1,
    "translation": 0.08,
    "contrast": 0.3,
    "brightness": 0.2,
    "gamma": 0.15,
}


@keras.saving.register_keras_serializable(package="cxr_core")
class RandomGamma(keras.layers.Layer):
    """Random gamma (exposure) change of 0-255 pixels, one gamma per image.

    Each image becomes ``255 * (x / 255) ** g`` with ``log g`` uniform in ``[-factor, factor]``;
    inputs are clipped to [0, 255] first, so the output always lies in [0, 255].

    Args:
        factor: Largest ``|log g|``; 0.15 gives gammas from about 0.86 to 1.16.
        seed: Seed of the random gammas, or None.
    """

    def __init__(self, factor: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = float(factor)
        self.seed = seed

    def call(self, inputs: tf.Tensor, training: bool = True) -> tf.Tensor:
        """Apply to ``(..., H, W, C)`` pixels; returns them unchanged unless training."""
        if not training or self.factor == 0:
            return inputs
        pixels = tf.clip_by_value(tf.cast(inputs, tf.float32), 0.0, 255.0)
        per_image = tf.concat([tf.shape(pixels)[:-3], [1, 1, 1]], axis=0)
        log_gamma = tf.random.uniform(per_image, -self.factor, self.factor, seed=self.seed)
        return 255.0 * tf.pow(pixels / 255.0, tf.exp(log_gamma))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """Same shape as the input."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for Keras serialisation."""
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


def make_augmenter(
    strength: float, horizontal_flip: bool = False, seed: int | None = None
) -> keras.Sequential:
    """Build the training augmentation.

    Args:
        strength: 0 (only the optional flip) to 2; factors are ``AUGMENT_AT_STRENGTH_1`` times
            ``strength``.
        horizontal_flip: Also mirror half of the images left to right.
        seed: Base seed of the random layers (layer i uses ``seed + i``), or None.

    Returns:
        A Sequential that maps float ``(batch, H, W, C)`` images in [0, 255] to images of the
        same shape in [0, 255] when called with ``training=True``, and returns its input
        unchanged otherwise.

    Raises:
        ConfigError: ``strength`` is outside [0, 2].
    """
    if isinstance(strength, bool) or not isinstance(strength, int | float):
        raise ConfigError(f"strength must be a number in [0, 2]. Received: strength={strength!r}")
    if not 0 <= strength <= 2:
        raise ConfigError(f"strength must be a number in [0, 2]. Received: strength={strength!r}")
    factor = {name: value * strength for name, value in AUGMENT_AT_STRENGTH_1.items()}

    def layer_seed(offset: int) -> int | None:
        return None if seed is None else seed + offset

    layers = []
    if horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=layer_seed(0)))
    if strength > 0:
        shift, pixels = factor["translation"], (0, 255)
        layers += [
            keras.layers.RandomRotation(factor["rotation"], seed=layer_seed(1)),
            keras.layers.RandomZoom(factor["zoom"], seed=layer_seed(2)),
            keras.layers.RandomTranslation(shift, shift, seed=layer_seed(3)),
            keras.layers.RandomContrast(factor["contrast"], value_range=pixels, seed=layer_seed(4)),
            keras.layers.RandomBrightness(factor["brightness"], pixels, seed=layer_seed(5)),
            RandomGamma(factor["gamma"], seed=layer_seed(6)),
        ]
    return keras.Sequential(layers or [keras.layers.Identity()], name="augmenter")

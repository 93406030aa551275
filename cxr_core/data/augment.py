"""Random changes to training images, so that a model learns the lungs, not one exposure.

Small rotations, zooms and shifts mimic patient positioning; contrast, brightness and gamma
changes mimic exposure and scanner settings; blur and sharpening, down-then-up sampling, JPEG
re-compression and noise mimic the acquisition and the file's history (detectors, scanners,
resizing and re-saving), which differ between hospitals - a model that leans on sharpness picks
up who took the image, not what it shows. Horizontal flips are off unless asked for: the
heart sits on the left, and a mirrored chest is not an X-ray a model will ever see. Every
layer works on raw 0-255 pixels, so the output is still model input (see
:func:`cxr_core.imaging.preprocess.to_model_input`).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from cxr_core.errors import ConfigError

__all__ = [
    "ACQUISITION_AT_STRENGTH_1",
    "AUGMENT_AT_STRENGTH_1",
    "RandomGamma",
    "RandomJpegQuality",
    "RandomNoise",
    "RandomResample",
    "RandomResizedCrop",
    "RandomSharpness",
    "gaussian_blur",
    "make_augmenter",
]

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

#: Acquisition factors at strength 1: ``sharpness`` is the largest unsharp-mask amount (negative
#: amounts blur, -1 is a Gaussian blur of sigma 1), ``resample`` the largest share of resolution
#: lost by down-then-up sampling, ``jpeg`` the quality range lost below 100 (at most 95 lost),
#: ``noise`` the largest Gaussian noise sigma as a fraction of 255. Each acts on half the images.
ACQUISITION_AT_STRENGTH_1 = {"sharpness": 1.0, "resample": 0.5, "jpeg": 70.0, "noise": 0.03}


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


def gaussian_blur(images: tf.Tensor, sigma: float) -> tf.Tensor:
    """Gaussian blur of ``(batch, H, W, C)`` float images (reflected borders), same shape."""
    radius = max(1, round(3 * sigma))
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-(offsets**2) / (2.0 * sigma**2))
    kernel /= tf.reduce_sum(kernel)
    channels = images.shape[-1]
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
    rows = tf.tile(tf.reshape(kernel, (-1, 1, 1, 1)), (1, 1, channels, 1))
    columns = tf.tile(tf.reshape(kernel, (1, -1, 1, 1)), (1, 1, channels, 1))
    blurred = tf.nn.depthwise_conv2d(padded, rows, (1, 1, 1, 1), "VALID")
    return tf.nn.depthwise_conv2d(blurred, columns, (1, 1, 1, 1), "VALID")


class _PerImageAugmentation(keras.layers.Layer):
    """Base of the acquisition layers: one random draw per image, applied to half of them."""

    def __init__(self, factor: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = float(factor)
        self.seed = seed

    def _draw(self, images: tf.Tensor, low: float, high: float) -> tf.Tensor:
        """``(batch,)`` uniform draws; the identity value ``low`` for about half the images."""
        batch = tf.shape(images)[0]
        seed = None if self.seed is None else self.seed + 1
        values = tf.random.uniform((batch,), low, high, seed=self.seed)
        applied = tf.random.uniform((batch,), seed=seed) < 0.5
        return tf.where(applied, values, tf.fill((batch,), tf.cast(low, tf.float32)))

    def call(self, inputs: tf.Tensor, training: bool = True) -> tf.Tensor:
        """Apply to ``(batch, H, W, C)`` 0-255 pixels when training; identity otherwise."""
        if not training or self.factor == 0:
            return inputs
        pixels = tf.clip_by_value(tf.cast(inputs, tf.float32), 0.0, 255.0)
        augmented = tf.clip_by_value(self._augment(pixels), 0.0, 255.0)
        return tf.ensure_shape(augmented, pixels.shape)  # map_fn loses the static shape

    def _augment(self, pixels: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """Same shape as the input."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for Keras serialisation."""
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


@keras.saving.register_keras_serializable(package="cxr_core")
class RandomSharpness(_PerImageAugmentation):
    """Unsharp masking ``x + a (x - blur(x))`` with ``a`` in ``[max(-1, -factor), factor]``."""

    def _augment(self, pixels: tf.Tensor) -> tf.Tensor:
        amount = self._draw(pixels, 0.0, 1.0) * 2.0 - 1.0  # in [-1, 1]; 0 -> identity below
        amount = tf.where(amount == -1.0, 0.0, amount) * self.factor
        amount = tf.maximum(amount, -1.0)[:, None, None, None]
        return pixels + amount * (pixels - gaussian_blur(pixels, 1.0))


@keras.saving.register_keras_serializable(package="cxr_core")
class RandomResample(_PerImageAugmentation):
    """Down-sampling by a random scale in ``[1 - factor, 1]`` (area), then back up (bilinear)."""

    def _augment(self, pixels: tf.Tensor) -> tf.Tensor:
        scales = 1.0 - self._draw(pixels, 0.0, min(self.factor, 0.9))
        size = tf.shape(pixels)[1:3]

        def resample(args: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
            image, scale = args
            small = tf.cast(tf.math.round(tf.cast(size, tf.float32) * scale), tf.int32)
            down = tf.image.resize(image, tf.maximum(small, 8), method="area")
            return tf.image.resize(down, size, method="bilinear")

        return tf.map_fn(resample, (pixels, scales), fn_output_signature=tf.float32)


@keras.saving.register_keras_serializable(package="cxr_core")
class RandomJpegQuality(_PerImageAugmentation):
    """JPEG re-compression at a quality in ``[100 - factor, 100]`` (``factor`` at most 95)."""

    def _augment(self, pixels: tf.Tensor) -> tf.Tensor:
        qualities = 100.0 - self._draw(pixels, 0.0, min(self.factor, 95.0))

        def recompress(args: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
            image, quality = args
            quality = tf.cast(tf.round(quality), tf.int32)
            return tf.image.adjust_jpeg_quality(image / 255.0, quality) * 255.0

        return tf.map_fn(recompress, (pixels, qualities), fn_output_signature=tf.float32)


@keras.saving.register_keras_serializable(package="cxr_core")
class RandomNoise(_PerImageAugmentation):
    """Gaussian noise whose sigma is uniform in ``[0, factor * 255]``, one sigma per image."""

    def _augment(self, pixels: tf.Tensor) -> tf.Tensor:
        sigma = self._draw(pixels, 0.0, self.factor * 255.0)[:, None, None, None]
        noise_seed = None if self.seed is None else self.seed + 2
        return pixels + sigma * tf.random.normal(tf.shape(pixels), seed=noise_seed)


@keras.saving.register_keras_serializable(package="cxr_core")
class RandomResizedCrop(keras.layers.Layer):
    """Crop each image to a random box and resize it back (tight framing, zoom in).

    The box covers a share of the area uniform in ``[1 - 0.5 * strength, 1]`` with an aspect
    ratio whose log is uniform in ``[log 0.8, log 1.25]``, at a random position inside the
    image; bilinear resizing keeps the output in [0, 255].

    Args:
        strength: 0 (off) to 1 (boxes down to half the area: up to about 1.41x zoom).
        seed: Seed of the random boxes, or None.
    """

    def __init__(self, strength: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strength = float(strength)
        self.seed = seed

    def call(self, inputs: tf.Tensor, training: bool = True) -> tf.Tensor:
        """Apply to ``(batch, H, W, C)`` pixels; returns them unchanged unless training."""
        if not training or self.strength == 0:
            return inputs
        pixels = tf.cast(inputs, tf.float32)
        batch, size = tf.shape(pixels)[0], tf.shape(pixels)[1:3]
        seed = self.seed
        area = tf.random.uniform([batch], 1.0 - 0.5 * self.strength, 1.0, seed=seed)
        log_ratio = tf.random.uniform([batch], tf.math.log(0.8), tf.math.log(1.25), seed=seed)
        height = tf.minimum(tf.sqrt(area / tf.exp(log_ratio)), 1.0)
        width = tf.minimum(tf.sqrt(area * tf.exp(log_ratio)), 1.0)
        top = tf.random.uniform([batch], seed=seed) * (1.0 - height)
        left = tf.random.uniform([batch], seed=seed) * (1.0 - width)
        boxes = tf.stack([top, left, top + height, left + width], axis=1)
        indices = tf.range(batch)
        return tf.image.crop_and_resize(pixels, boxes, indices, size, method="bilinear")

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """Same as the input's."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """Serializable settings."""
        return {**super().get_config(), "strength": self.strength, "seed": self.seed}


def make_augmenter(
    strength: float,
    horizontal_flip: bool = False,
    seed: int | None = None,
    acquisition: float = 0.0,
    framing: float = 0.0,
) -> keras.Sequential:
    """Build the training augmentation.

    Args:
        strength: 0 (only the optional flip) to 2; factors are ``AUGMENT_AT_STRENGTH_1`` times
            ``strength``.
        horizontal_flip: Also mirror half of the images left to right.
        seed: Base seed of the random layers (layer i uses ``seed + i``), or None.
        acquisition: 0 (off) to 2; sharpness, resolution, JPEG and noise changes with the
            factors of ``ACQUISITION_AT_STRENGTH_1`` times ``acquisition``, after the others.
        framing: 0 (off) to 1; a :class:`RandomResizedCrop` of that strength first.

    Returns:
        A Sequential that maps float ``(batch, H, W, C)`` images in [0, 255] to images of the
        same shape in [0, 255] when called with ``training=True``, and returns its input
        unchanged otherwise.

    Raises:
        ConfigError: ``strength`` is outside [0, 2].
    """
    for name, value in (("strength", strength), ("acquisition", acquisition)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
            raise ConfigError(f"{name} must be a number in [0, 2]. Received: {name}={value!r}")
    factor = {name: value * strength for name, value in AUGMENT_AT_STRENGTH_1.items()}
    degrade = {name: value * acquisition for name, value in ACQUISITION_AT_STRENGTH_1.items()}

    def layer_seed(offset: int) -> int | None:
        return None if seed is None else seed + offset

    if isinstance(framing, bool) or not isinstance(framing, int | float) or not 0 <= framing <= 1:
        raise ConfigError(f"framing must be a number in [0, 1]. Received: framing={framing!r}")
    layers: list[keras.layers.Layer] = []
    if framing > 0:
        layers.append(RandomResizedCrop(framing, seed=layer_seed(60)))
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
    if acquisition > 0:
        layers += [
            RandomSharpness(degrade["sharpness"], seed=layer_seed(20)),
            RandomResample(degrade["resample"], seed=layer_seed(30)),
            RandomJpegQuality(degrade["jpeg"], seed=layer_seed(40)),
            RandomNoise(degrade["noise"], seed=layer_seed(50)),
        ]
    return keras.Sequential(layers or [keras.layers.Identity()], name="augmenter")

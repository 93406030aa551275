"""Contrast-limited adaptive histogram equalisation (CLAHE) as a Keras layer.

CLAHE (Zuiderveld 1994; the algorithm of OpenCV's ``createCLAHE``) equalises the histogram of
each tile of a grid, clipping every histogram at ``clip_limit`` times its mean bin so noise is
not amplified, and blends the four nearest tiles' mappings bilinearly. On this dataset it takes
away much of what differs between hospitals and exposures - global contrast, brightness and
part of the sharpness - that a classifier would otherwise learn as a shortcut.

It is a layer of the model, right after the input, so the one graph that training, prediction,
Grad-CAM and the stress suite all run applies it identically; a model saved before this layer
existed has no such layer and predicts exactly as it was trained. The input is raw 0-255 pixels
with three identical grey channels, the output likewise.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

__all__ = ["CLAHE"]

_BINS = 256


def _tile_geometry(size: int, tiles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel along one axis: its tile, the two tiles it blends, and the second's weight."""
    pixel = np.arange(size)
    own_tile = np.minimum(pixel * tiles // size, tiles - 1)
    # OpenCV: txf = x / tile_width - 0.5 (tile centres at half a tile from each edge).
    position = pixel * tiles / size - 0.5
    first = np.floor(position)
    weight = position - first
    low = np.clip(first, 0, tiles - 1).astype(np.int32)
    high = np.clip(first + 1, 0, tiles - 1).astype(np.int32)
    return own_tile.astype(np.int32), low, high, weight.astype(np.float32)


@keras.saving.register_keras_serializable(package="cxr_core")
class CLAHE(keras.layers.Layer):
    """CLAHE of ``(batch, H, W, C)`` 0-255 images, computed on their grey mean.

    Args:
        clip_limit: Contrast limit as in OpenCV: a tile's histogram is clipped at
            ``clip_limit * tile_pixels / 256`` (at least 1) and the excess spread evenly.
        tiles: Tiles along each side (``tiles x tiles`` grid).

    Returns (when called):
        float32 ``(batch, H, W, C)`` in [0, 255]: the equalised grey image in every channel.
    """

    def __init__(self, clip_limit: float = 2.0, tiles: int = 8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clip_limit = float(clip_limit)
        self.tiles = int(tiles)
        self.trainable = False

    def build(self, input_shape: tuple) -> None:
        """Precompute each pixel's tiles and blending weights for the static input size."""
        height, width = int(input_shape[1]), int(input_shape[2])
        self._size = (height, width)
        own_y, low_y, high_y, weight_y = _tile_geometry(height, self.tiles)
        own_x, low_x, high_x, weight_x = _tile_geometry(width, self.tiles)
        tile_of_pixel = own_y[:, None] * self.tiles + own_x[None, :]
        pixels_per_tile = np.bincount(tile_of_pixel.ravel(), minlength=self.tiles**2)
        self._tile_offset = tf.constant((tile_of_pixel * _BINS).ravel(), tf.int32)
        self._pixels_per_tile = tf.constant(pixels_per_tile, tf.float32)
        corners = [(low_y, low_x), (low_y, high_x), (high_y, low_x), (high_y, high_x)]
        self._corner_offsets = [
            tf.constant(((ty[:, None] * self.tiles + tx[None, :]) * _BINS).ravel(), tf.int32)
            for ty, tx in corners
        ]
        wy = np.repeat(weight_y[:, None], width, axis=1).ravel()
        wx = np.repeat(weight_x[None, :], height, axis=0).ravel()
        self._corner_weights = [
            tf.constant(w, tf.float32) for w in ((1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx))
        ] + [tf.constant(wy * wx, tf.float32)]
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """Equalise each image of the batch; see the class docstring for shapes."""
        pixels = tf.cast(inputs, tf.float32)
        channels = pixels.shape[-1] or 3
        grey = tf.reduce_mean(pixels, axis=-1)
        batch = tf.shape(grey)[0]
        n_pixels = self._size[0] * self._size[1]
        values = tf.cast(tf.clip_by_value(tf.round(grey), 0.0, 255.0), tf.int32)
        values = tf.reshape(values, (batch, n_pixels))
        lut = self._lookup_tables(values, batch)
        equalised = tf.zeros_like(values, tf.float32)
        for offset, weight in zip(self._corner_offsets, self._corner_weights, strict=True):
            equalised += weight * tf.gather(lut, offset[None, :] + values, batch_dims=1)
        equalised = tf.clip_by_value(tf.round(equalised), 0.0, 255.0)
        equalised = tf.reshape(equalised, (batch, *self._size, 1))
        return tf.repeat(equalised, channels, axis=-1)

    def _lookup_tables(self, values: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
        """``(batch, tiles * tiles * 256)`` mapping of each tile's grey values."""
        n_tiles = self.tiles**2
        image_offset = tf.range(batch)[:, None] * (n_tiles * _BINS)
        bins = tf.reshape(values + self._tile_offset[None, :] + image_offset, (-1,))
        histogram = tf.math.unsorted_segment_sum(
            tf.ones_like(bins, tf.float32), bins, batch * n_tiles * _BINS
        )
        histogram = tf.reshape(histogram, (batch, n_tiles, _BINS))
        limit = tf.maximum(tf.floor(self.clip_limit * self._pixels_per_tile / _BINS), 1.0)
        limit = limit[None, :, None]
        excess = tf.reduce_sum(tf.nn.relu(histogram - limit), axis=-1, keepdims=True)
        # OpenCV's integer redistribution: an equal share to every bin, then one more pixel to
        # every ``step``-th bin from the darkest until the remainder is used up.
        share = tf.floor(excess / _BINS)
        remainder = excess - share * _BINS
        step = tf.maximum(tf.floor(_BINS / tf.maximum(remainder, 1.0)), 1.0)
        bins = tf.range(_BINS, dtype=tf.float32)
        extra = tf.logical_and(tf.math.floormod(bins, step) == 0, tf.floor(bins / step) < remainder)
        histogram = tf.minimum(histogram, limit) + share + tf.cast(extra, tf.float32)
        scale = (_BINS - 1) / self._pixels_per_tile[None, :, None]
        lut = tf.clip_by_value(tf.round(tf.cumsum(histogram, axis=-1) * scale), 0.0, 255.0)
        return tf.reshape(lut, (batch, n_tiles * _BINS))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """Same shape as the input."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for Keras serialisation."""
        return {**super().get_config(), "clip_limit": self.clip_limit, "tiles": self.tiles}

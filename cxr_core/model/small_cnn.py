"""A compact CNN trained from scratch: the backbone that is practical on a laptop CPU."""

from __future__ import annotations

import keras
from keras import layers

from cxr_core.errors import WeightsUnavailableError

__all__ = ["SmallCNN"]

_BLOCK_FILTERS = (32, 64, 128, 192)
# Running statistics start at variance 1 while this network's activations have variances near
# 0.01; at momentum 0.9 a short run (600 images: 19 steps an epoch) kept that start value and
# gave a constant validation output (AUC 0.5). 0.7 follows within a few steps (AUC 0.97 after
# one such epoch) and still averages several batches.
_BN_MOMENTUM = 0.7


def _block(x: keras.KerasTensor, filters: int, index: int) -> keras.KerasTensor:
    for repeat in (1, 2):
        x = layers.SeparableConv2D(
            filters, 3, padding="same", use_bias=False, name=f"block{index}_sepconv{repeat}"
        )(x)
        x = layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"block{index}_bn{repeat}")(x)
        x = layers.Activation("relu", name=f"block{index}_relu{repeat}")(x)
    return layers.MaxPooling2D(2, name=f"block{index}_pool")(x)


def SmallCNN(  # noqa: N802 - named like keras.applications builders
    include_top: bool = False,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: tuple[int, int, int] | None = None,
    name: str = "small_cnn",
) -> keras.Model:
    """Build the compact CNN (about 0.55 M parameters) with the keras.applications signature.

    Args:
        include_top: Must be False: the classification head is added by ``model.build_model``.
        weights: ``None`` or the path of a ``.weights.h5`` file; there are no ImageNet weights.
        input_tensor: Tensor to build on, e.g. the output of the preprocessing layers.
        input_shape: ``(H, W, 3)`` when ``input_tensor`` is not given.
        name: Model name.

    Returns:
        A functional model from the input to the last convolution's ReLU output
        (layer ``last_conv``, spatial size H / 32).
    """
    if include_top:
        raise ValueError(f"SmallCNN has no top. Received: include_top={include_top}")
    if weights == "imagenet":
        raise WeightsUnavailableError(
            "small_cnn has no ImageNet weights; train it from scratch with weights 'none'."
        )
    inputs = input_tensor if input_tensor is not None else keras.Input(input_shape)
    x = layers.Conv2D(24, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=_BN_MOMENTUM, name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    for index, filters in enumerate(_BLOCK_FILTERS, start=1):
        x = _block(x, filters, index)
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="last_conv")(x)
    source = keras.utils.get_source_inputs(inputs) if input_tensor is not None else inputs
    model = keras.Model(source, x, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model

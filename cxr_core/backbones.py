"""The backbone registry: every network a :class:`~cxr_core.config.ModelConfig` can name.

Each entry says how to build the backbone (a ``"module:function"`` called with Keras's
``applications`` arguments), what input scaling its weights expect, which layer Grad-CAM explains
and the smallest input it accepts. Imports only :mod:`cxr_core.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cxr_core.errors import ConfigError

__all__ = ["BACKBONES", "PREPROCESSING_MODES", "BackboneSpec", "backbone_spec"]

#: Input scaling a backbone's weights expect; applied inside the model on raw 0-255 pixels.
PREPROCESSING_MODES = ("tf", "torch", "caffe", "none", "unit")


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one registered backbone.

    Attributes:
        name: Registry key, as typed on the command line.
        builder: ``"module:function"`` that builds the backbone; it receives ``input_tensor``,
            ``weights`` (``"imagenet"``, ``None`` or a file path) and ``include_top=False``.
        preprocessing: Input scaling its weights expect (one of ``PREPROCESSING_MODES``):
            ``tf`` maps 0..255 to -1..1, ``torch`` to ImageNet mean/std, ``caffe`` subtracts the
            BGR ImageNet means, ``unit`` maps to 0..1, ``none`` leaves pixels as they are (the
            backbone normalises them itself).
        last_conv_layer: Name of the layer that Grad-CAM explains by default.
        description: One line for the app's backbone picker.
        min_image_size: Smallest input side the architecture accepts.
    """

    name: str
    builder: str
    preprocessing: str
    last_conv_layer: str
    description: str
    min_image_size: int = 32


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "efficientnet_lite0",
            "cxr_core.model.efficientnet_lite:EfficientNetLite0",
            "none",
            "top_activation",
            "EfficientNet-Lite0 (4.7 M params, CPU-friendly; ImageNet weights from pip)",
        ),
        BackboneSpec(
            "efficientnet_lite1",
            "cxr_core.model.efficientnet_lite:EfficientNetLite1",
            "none",
            "top_activation",
            "EfficientNet-Lite1 (5.4 M params, 240 px by design; ImageNet weights from pip)",
        ),
        BackboneSpec(
            "efficientnet_lite2",
            "cxr_core.model.efficientnet_lite:EfficientNetLite2",
            "none",
            "top_activation",
            "EfficientNet-Lite2 (6.1 M params, 260 px by design; ImageNet weights from pip)",
        ),
        BackboneSpec(
            "mobilenet_v2",
            "keras.applications:MobileNetV2",
            "tf",
            "out_relu",
            "MobileNetV2 (3.5 M params, fast on CPU)",
        ),
        BackboneSpec(
            "efficientnet_b0",
            "keras.applications:EfficientNetB0",
            "none",
            "top_activation",
            "EfficientNet-B0 (5.3 M params)",
        ),
        BackboneSpec(
            "densenet121",
            "keras.applications:DenseNet121",
            "torch",
            "relu",
            "DenseNet-121 (8 M params; CheXNet's backbone)",
        ),
        BackboneSpec(
            "resnet50",
            "keras.applications:ResNet50",
            "caffe",
            "conv5_block3_out",
            "ResNet-50 (25.6 M params)",
        ),
        BackboneSpec(
            "vgg16",
            "keras.applications:VGG16",
            "caffe",
            "block5_conv3",
            "VGG-16 (138 M params; slow on CPU)",
        ),
        BackboneSpec(
            "small_cnn",
            "cxr_core.model.small_cnn:SmallCNN",
            "unit",
            "last_conv",
            "Compact CNN trained from scratch (0.55 M params; practical on a CPU)",
            min_image_size=32,
        ),
    )
}


def backbone_spec(name: str) -> BackboneSpec:
    """Return the registry entry for ``name``; raises :class:`ConfigError` if unknown."""
    try:
        return BACKBONES[name]
    except KeyError:
        known = ", ".join(sorted(BACKBONES))
        raise ConfigError(f"backbone must be one of {known}. Received: backbone={name!r}") from None

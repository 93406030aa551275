"""Build, save and load the pneumonia classifier.

The model is one flat Keras graph so that Grad-CAM can reach any inner layer::

    image (raw 0-255, H x W x 3) -> [CLAHE] -> backbone's own input scaling ->
    keras.applications backbone (include_top=False) -> global average pooling -> dropout ->
    Dense(1) "logit" -> sigmoid "probability"

Every saved model has a JSON sidecar beside it (same name, ``.json``) with what the app and the
command line need to use it honestly: class names, image size, backbone, decision threshold,
validation metrics, training configuration, dataset fingerprint and library versions.
"""

from __future__ import annotations

import importlib
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from cxr_core.backbones import BackboneSpec, backbone_spec
from cxr_core.config import CLASS_NAMES, ModelConfig
from cxr_core.errors import DataError, ModelLoadError, WeightsUnavailableError
from cxr_core.imaging.contrast import CLAHE
from cxr_core.io import atomic_write, write_json_atomic
from cxr_core.sidecar import ModelMetadata, keras_input_size, read_metadata, sidecar_path

__all__ = [
    "FEATURE_LAYER",
    "HEAD_LAYER_NAMES",
    "backbone_layers",
    "build_model",
    "load_model",
    "predict_scores",
    "read_metadata",
    "save_model",
    "sidecar_path",
]

#: The layer whose output is the pooled image features (input check, CAM).
FEATURE_LAYER = "pool"

HEAD_LAYER_NAMES = ("pool", "dropout", "logit", "probability")
_PREPROCESS_PREFIX = "preprocess_"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# Caffe-style means in BGR order. Our inputs have three identical grey channels, so the RGB->BGR
# flip those weights expect is a no-op and only the per-channel mean subtraction remains.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def _preprocessing(mode: str, x: keras.KerasTensor) -> keras.KerasTensor:
    if mode == "tf":
        return layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess_scale")(x)
    if mode == "unit":
        return layers.Rescaling(1 / 255.0, name="preprocess_scale")(x)
    if mode == "torch":
        x = layers.Rescaling(1 / 255.0, name="preprocess_scale")(x)
        variance = [s**2 for s in _IMAGENET_STD]
        return layers.Normalization(
            mean=list(_IMAGENET_MEAN), variance=variance, name="preprocess_normalize"
        )(x)
    if mode == "caffe":
        return layers.Normalization(
            mean=list(_CAFFE_MEAN_BGR), variance=[1.0, 1.0, 1.0], name="preprocess_normalize"
        )(x)
    return x  # "none": the backbone scales its input itself


def _resolve_weights(config: ModelConfig) -> str | None:
    weights = config.weights
    if weights.lower() == "none":
        return None
    if weights.lower() == "imagenet":
        return "imagenet"
    if not Path(weights).is_file():
        raise WeightsUnavailableError(f"weights file not found: {weights}")
    return weights


def _build_backbone(
    spec: BackboneSpec, weights: str | None, inputs: keras.KerasTensor
) -> keras.Model:
    module_name, function_name = spec.builder.split(":")
    builder = getattr(importlib.import_module(module_name), function_name)
    try:
        return builder(
            include_top=False, weights=weights, input_tensor=inputs, input_shape=inputs.shape[1:]
        )
    except WeightsUnavailableError:
        raise
    except Exception as error:
        if weights == "imagenet":
            problem = _download_problem(error)
            raise WeightsUnavailableError(
                f"ImageNet weights for {spec.name} could not be downloaded ({problem}); "
                "connect to the internet once so Keras can cache them, or pass weights 'none', "
                "a local weights file, or the efficientnet_lite0 backbone whose ImageNet "
                "weights install with pip."
            ) from None
        if weights is not None:
            raise WeightsUnavailableError(
                f"weights file {weights} does not fit {spec.name}: {_first_line(error)}"
            ) from None
        raise


def _download_problem(error: BaseException) -> str:
    text = str(error)
    if "URL fetch failure" in text or "Name or service" in text or "urlopen" in text:
        return "no network connection"
    return _first_line(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def build_model(config: ModelConfig) -> keras.Model:
    """Build the classifier described by ``config``.

    Args:
        config: Backbone, weights, input size and dropout.

    Returns:
        An uncompiled functional model mapping ``(batch, s, s, 3)`` float pixels in [0, 255] to
        ``(batch, 1)`` probabilities of PNEUMONIA. Its last layers are named ``pool``,
        ``dropout``, ``logit`` (linear) and ``probability`` (sigmoid).

    Raises:
        WeightsUnavailableError: ImageNet weights cannot be fetched, or a weights file is missing
            or does not fit the backbone.
    """
    spec = backbone_spec(config.backbone)
    weights = _resolve_weights(config)
    size = config.image_size
    inputs = keras.Input((size, size, 3), name="image")
    pixels = inputs
    if config.contrast == "clahe":
        pixels = CLAHE(config.clahe_clip_limit, config.clahe_tiles, name="preprocess_clahe")(inputs)
    scaled = _preprocessing(spec.preprocessing, pixels)
    backbone = _build_backbone(spec, weights, scaled)
    x = layers.GlobalAveragePooling2D(name="pool")(backbone.output)
    x = layers.Dropout(config.dropout, name="dropout")(x)
    logit = layers.Dense(1, name="logit")(x)
    probability = layers.Activation("sigmoid", dtype="float32", name="probability")(logit)
    model = keras.Model(inputs, probability, name=f"cxr_{spec.name}")
    if not config.pretrained:
        # keras.applications use momentum 0.99/0.999; trained from scratch on a few thousand
        # images, such slow running statistics left validation outputs constant for epochs.
        for layer in model.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = min(layer.momentum, 0.9)
    return model


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Return the backbone's layers in graph order (no input, preprocessing or head layers)."""
    return [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
        and not layer.name.startswith(_PREPROCESS_PREFIX)
        and layer.name not in HEAD_LAYER_NAMES
    ]


def predict_scores(
    model: keras.Model,
    dataset: tf.data.Dataset,
    callbacks: tuple[keras.callbacks.Callback, ...] = (),
) -> np.ndarray:
    """Return the model's PNEUMONIA probabilities for every image of ``dataset``.

    Args:
        model: A classifier from :func:`build_model` or :func:`load_model`.
        dataset: Batches of ``(images, labels)`` or of images alone.
        callbacks: Keras callbacks of the prediction (e.g. one reporting progress per batch).

    Returns:
        float32 array of shape ``(n,)`` with values in [0, 1].
    """
    images_only = dataset.map(lambda *batch: batch[0])
    try:
        scores = model.predict(images_only, verbose=0, callbacks=list(callbacks))
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        raise DataError(f"an image could not be decoded: {_first_line(error)}") from None
    return np.asarray(scores, dtype=np.float32).reshape(-1)


def library_versions() -> dict[str, str]:
    """Return the versions that a saved model records for reproducibility."""
    from cxr_core import __version__

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "cxr_core": __version__,
    }


def save_model(model: keras.Model, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Save ``model`` without optimizer state, and its JSON sidecar, atomically.

    Args:
        model: The classifier.
        path: Destination ending in ``.keras``.
        metadata: Must hold ``image_size``, ``backbone`` and ``threshold``; class names,
            library versions and a timestamp are added. It is checked as
            :class:`cxr_core.sidecar.ModelMetadata` before anything is written.

    Returns:
        The model path.

    Raises:
        ModelLoadError: The path does not end in ``.keras`` or the metadata is malformed.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelLoadError(f"model path must end in .keras. Received: path={str(path)!r}")
    full_metadata = {
        "class_names": list(CLASS_NAMES),
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": library_versions(),
        **metadata,
    }
    ModelMetadata.from_dict(full_metadata)  # never write a sidecar that cannot be read back
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh, never-compiled copy: clone_model keeps the optimizer, whose Adam moments
    # would more than double the file.
    bare = keras.Model.from_config(model.get_config())
    bare.set_weights(model.get_weights())

    # The sidecar is written while the model's temporary file waits, so a reader never
    # finds the new model beside an old sidecar.
    def write(temporary: Path) -> None:
        bare.save(temporary)
        write_json_atomic(sidecar_path(path), full_metadata)

    return atomic_write(path, write)


def load_model(path: str | Path) -> tuple[keras.Model, ModelMetadata]:
    """Load a model saved by :func:`save_model`, in Keras safe mode.

    Returns:
        ``(model, metadata)``; the metadata is checked (:func:`cxr_core.sidecar.read_metadata`)
        and its image size agrees with the model's input.

    Raises:
        ModelLoadError: The file or its sidecar is missing, truncated, corrupt or wrongly
            shaped, or the model is not a classifier.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    metadata = read_metadata(path)
    keras_input_size(path)  # a missing or truncated file gets its own message, not Keras's
    _register_custom_objects()
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        raise ModelLoadError(
            f"{path.name} is not a readable Keras model: {_first_line(error)}"
        ) from None
    names = {layer.name for layer in model.layers}
    if not {"logit", "probability"} <= names:
        raise ModelLoadError(f"{path.name} is not a CXR classifier (no logit/probability layers)")
    side = model.input_shape[1]
    if side is not None and side != metadata.image_size:
        raise ModelLoadError(
            f"the metadata of {path.name} says {metadata.image_size} px but the model takes "
            f"{side} px images"
        )
    return model, metadata


def _register_custom_objects() -> None:
    """Import the modules whose layers a saved model may reference."""
    importlib.import_module("cxr_core.model.small_cnn")
    importlib.import_module("cxr_core.imaging.contrast")

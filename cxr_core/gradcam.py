"""Predictions and Grad-CAM heatmaps for one loaded model.

A :class:`Predictor` is made once per model. It builds the gradient model (input -> last conv
activations and logit) once and compiles two ``tf.function`` steps with a fixed input signature
(a greyscale uint8 image of any size), so repeated calls neither rebuild nor retrace anything and
memory stays flat. Each step runs :func:`cxr_core.preprocess.to_model_input` inside the graph:
the same resize and channel handling that training uses.

``explain`` takes one forward pass through the gradient model and one backward pass from the
logit to the explained layer (the head only: pooling and the final dense layer), and derives the
probability from the same logit. The predicted class is explained: the gradient of ``+logit``
for PNEUMONIA and ``-logit`` for NORMAL, as in Selvaraju et al. (2017), Grad-CAM; Grad-CAM++
(Chattopadhay et al., 2018) uses the closed form for an exponential score, which needs only
first-order gradients, so ``explain_all`` derives both maps from the same pass. Nothing here
writes files or draws on screen (``overlay`` lives in :mod:`cxr_core.heatmap`, re-exported here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import tensorflow as tf

from .conformal import decide
from .errors import ConfigError, InvalidImageError, ModelLoadError
from .gate import InputCheck, InputGate, gate_path, load_gate, pixel_problem, pooled_output
from .heatmap import overlay
from .imaging import mean_chroma
from .preprocess import to_model_input
from .sidecar import ModelMetadata

__all__ = ["METHODS", "Prediction", "Predictor", "find_last_conv_layer", "overlay"]

#: Heatmap methods that :meth:`Predictor.explain` accepts.
METHODS = ("gradcam", "gradcam++")

_CONV_LAYERS = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)
_ACTIVATION_LAYERS = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.PReLU,
)


@dataclass(frozen=True, eq=False)
class Prediction:
    """The model's verdict on one image.

    Attributes:
        probability: Probability of PNEUMONIA, in [0, 1].
        label: ``class_names[1]`` ("PNEUMONIA") when ``probability >= threshold``, else
            ``class_names[0]`` ("NORMAL").
        threshold: The model's decision threshold on ``probability``.
        heatmap: ``(H, W)`` float32 in [0, 1] at the input image's size, explaining ``label``;
            ``None`` when only a prediction was asked for.
        input_check: Whether the image looks like a frontal chest X-ray
            (:class:`cxr_core.gate.InputCheck`); a refused image's verdict must not be shown
            as one. ``accepted`` is True with no reason when the model has no input check
            and the pixel checks pass.
        heatmaps: Every map computed, by method (``"gradcam"``, ``"gradcam++"``): one entry
            from :meth:`Predictor.explain`, all of :data:`METHODS` from
            :meth:`Predictor.explain_all`; empty when only a prediction was asked for.
        prediction_set: The class names in the conformal set (:mod:`cxr_core.conformal`);
            just ``label`` when the model has no conformal quantiles.
        decision: ``NORMAL``, ``PNEUMONIA`` or ``UNCERTAIN`` (both classes in the set).
    """

    probability: float
    label: str
    threshold: float
    heatmap: np.ndarray | None = None
    input_check: InputCheck = InputCheck(True)
    heatmaps: Mapping[str, np.ndarray] = field(default_factory=dict)
    prediction_set: tuple[str, ...] = ()
    decision: str = ""

    def __repr__(self) -> str:
        heatmap = None if self.heatmap is None else f"<{self.heatmap.shape} float32>"
        return (
            f"Prediction(probability={self.probability:.4f}, label={self.label!r}, "
            f"threshold={self.threshold:.4f}, heatmap={heatmap}, "
            f"accepted={self.input_check.accepted})"
        )


def _output_rank(layer: keras.layers.Layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):  # a layer used twice has no single output
        return None


def find_last_conv_layer(model: keras.Model) -> str:
    """Name the layer Grad-CAM explains by default.

    Args:
        model: A flat functional classifier.

    Returns:
        The name of the last layer, before global pooling, that has a 4-D output
        ``(batch, h, w, channels)`` and is a convolution, its activation, or a nested backbone.

    Raises:
        ModelLoadError: The model has no such layer.
    """
    for layer in reversed(model.layers):
        explainable = isinstance(layer, _CONV_LAYERS + _ACTIVATION_LAYERS + (keras.Model,))
        if explainable and _output_rank(layer) == 4:
            return layer.name
    raise ModelLoadError("The model has no convolutional layer that Grad-CAM can explain.")


def _resolve_layers(
    model: keras.Model, metadata: ModelMetadata, layer_name: str | None
) -> tuple[str, ...]:
    """The layers to explain: ``layer_name``, else the sidecar's, else the last conv layer."""
    names = {layer.name for layer in model.layers}
    if layer_name is not None:
        if layer_name not in names or _output_rank(model.get_layer(layer_name)) != 4:
            raise ConfigError(
                "layer_name must name a layer of the model with a 4-D output. "
                f"Received: layer_name={layer_name!r}"
            )
        return (layer_name,)
    stored = metadata.gradcam_layers or (
        (metadata.last_conv_layer,) if metadata.last_conv_layer else ()
    )
    for name in stored:
        if name not in names or _output_rank(model.get_layer(name)) != 4:
            raise ModelLoadError(
                f"The model metadata names layer {name!r} for Grad-CAM, which the model lacks."
            )
    return stored or (find_last_conv_layer(model),)


class Predictor:
    """Probability, label and Grad-CAM for one loaded classifier.

    Args:
        model: A classifier from :func:`cxr_core.model.build_model` or ``load_model``: input
            ``(batch, s, s, 3)`` raw 0-255 pixels, a linear layer named ``logit`` and a
            sigmoid output.
        metadata: The model's checked sidecar (:class:`cxr_core.sidecar.ModelMetadata`), or a
            plain dict of its keys: ``threshold`` (default 0.5), ``image_size`` (default the
            model's input side), ``class_names`` and ``last_conv_layer`` are used.
        layer_name: The layer to explain; overrides ``metadata.gradcam_layers`` (an
            ensemble's members' last conv layers, explained together), then
            ``metadata.last_conv_layer``, then :func:`find_last_conv_layer`.
        gate: The model's fitted input check (:mod:`cxr_core.gate`), or None for pixel
            checks only.

    Raises:
        ModelLoadError: The model has no ``logit`` layer, or its metadata is unusable.
        ConfigError: ``layer_name`` is not a layer with a 4-D output.
    """

    def __init__(
        self,
        model: keras.Model,
        metadata: ModelMetadata | Mapping[str, Any],
        layer_name: str | None = None,
        gate: InputGate | None = None,
    ) -> None:
        self._model = model
        self._gate = gate
        self._metadata = _as_metadata(model, metadata)
        self._threshold = self._metadata.threshold
        self._image_size = self._metadata.image_size
        self._class_names = self._metadata.class_names
        self._layer_names = _resolve_layers(model, self._metadata, layer_name)
        try:
            logit = model.get_layer("logit")
        except ValueError:
            raise ModelLoadError("The model has no layer named 'logit' to explain.") from None
        convs = [model.get_layer(name).output for name in self._layer_names]
        features = pooled_output(model)
        # Built once: a new keras.Model per call would leak graphs and cost a rebuild each time.
        self._gradient_model = keras.Model(model.inputs, [convs, logit.output, features])
        self._scoring_model = keras.Model(model.inputs, [logit.output, features])
        self._traces = {"predict": 0, "explain": 0}
        signature = [tf.TensorSpec((None, None), tf.uint8)]
        self._predict_step = tf.function(self._predict_graph, input_signature=signature)
        self._explain_step = tf.function(self._explain_graph, input_signature=signature)

    @classmethod
    def from_path(cls, path: str | Path, layer_name: str | None = None) -> Predictor:
        """Load a model saved by :func:`cxr_core.model.save_model` and wrap it.

        Raises:
            ModelLoadError: The model or its sidecar is missing, corrupt or not a classifier.
        """
        from .model import load_model

        model, metadata = load_model(path)
        return cls.with_stored_gate(model, metadata, path, layer_name=layer_name)

    @classmethod
    def with_stored_gate(
        cls,
        model: keras.Model,
        metadata: ModelMetadata,
        path: str | Path,
        layer_name: str | None = None,
    ) -> Predictor:
        """Wrap an already loaded model with the input check saved beside it at ``path``.

        Raises:
            ModelLoadError: The sidecar names an input check whose file is missing or unusable.
        """
        gate = None
        if metadata.input_gate is not None:
            feature_size = int(pooled_output(model).shape[-1])
            gate = load_gate(gate_path(path), feature_size)
        return cls(model, metadata, layer_name=layer_name, gate=gate)

    @property
    def has_gate(self) -> bool:
        """Whether the model has a fitted feature check (pixel checks always run)."""
        return self._gate is not None

    @property
    def threshold(self) -> float:
        """Decision threshold on the PNEUMONIA probability, in [0, 1]."""
        return self._threshold

    @property
    def image_size(self) -> int:
        """Side of the square model input, in pixels."""
        return self._image_size

    @property
    def class_names(self) -> tuple[str, str]:
        """Names of label 0 and label 1, e.g. ``("NORMAL", "PNEUMONIA")``."""
        return self._class_names

    @property
    def layer_name(self) -> str:
        """Name of the (first) layer that Grad-CAM explains."""
        return self._layer_names[0]

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names of every layer Grad-CAM explains: one, or one per ensemble member."""
        return self._layer_names

    @property
    def model(self) -> keras.Model:
        """The wrapped classifier."""
        return self._model

    @property
    def trace_counts(self) -> dict[str, int]:
        """How often each compiled step was traced: 1 each once used; more means retracing."""
        return dict(self._traces)

    def predict(self, pixels: np.ndarray, colour: float = 0.0) -> Prediction:
        """Score one image without a heatmap (the fast path).

        Args:
            pixels: ``(H, W)`` uint8 greyscale, 0-255 (``DecodedImage.pixels``); ``(H, W, 3)``
                RGB and float arrays in [0, 255] are converted.
            colour: The file's mean chroma (``DecodedImage.info["colour"]``), for the input
                check; an RGB ``pixels`` array is measured itself.

        Returns:
            A :class:`Prediction` whose ``heatmap`` is None.
        """
        colour = max(colour, mean_chroma(pixels))
        grey = _as_grey_uint8(pixels)
        probability, features = self._predict_step(grey)
        check = self._check(grey, colour, features.numpy())
        return self._verdict(float(probability), None, check)

    def explain(
        self, pixels: np.ndarray, method: str = "gradcam", colour: float = 0.0
    ) -> Prediction:
        """Score one image and explain the predicted class with a heatmap.

        Args:
            pixels: ``(H, W)`` uint8 greyscale, 0-255, as for :meth:`predict`.
            method: ``"gradcam"`` or ``"gradcam++"``.
            colour: As for :meth:`predict`.

        Returns:
            A :class:`Prediction` with a ``(H, W)`` float32 heatmap in [0, 1] (all zeros where
            the gradient is flat; never NaN).

        Raises:
            ConfigError: ``method`` is not one of :data:`METHODS`.
        """
        if method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}. Received: {method!r}")
        return self._explained(pixels, (method,), colour)

    def explain_all(self, pixels: np.ndarray, colour: float = 0.0) -> Prediction:
        """Score one image and explain it with every method, from one forward and one backward pass.

        Grad-CAM and Grad-CAM++ weigh the same activations by the same first-order gradients,
        so both maps cost one pass; a viewer can then switch between them without a model call.

        Args:
            pixels: ``(H, W)`` uint8 greyscale, 0-255, as for :meth:`predict`.
            colour: As for :meth:`predict`.

        Returns:
            A :class:`Prediction` whose ``heatmaps`` holds a ``(H, W)`` float32 map in [0, 1]
            for each of :data:`METHODS`; ``heatmap`` is the Grad-CAM one.
        """
        return self._explained(pixels, METHODS, colour)

    def _explained(self, pixels: np.ndarray, methods: tuple[str, ...], colour: float) -> Prediction:
        colour = max(colour, mean_chroma(pixels))
        grey = _as_grey_uint8(pixels)
        probability, activations, gradients, features = self._explain_step(grey)
        check = self._check(grey, colour, features.numpy())
        verdict = self._verdict(float(probability), None, check)
        # d(-logit)/dA = -d(logit)/dA: NORMAL is explained without a second backward pass.
        sign = 1.0 if verdict.label == self._class_names[1] else -1.0
        # One (activations, gradients) pair per explained layer: one, or one per member.
        pairs = [(a.numpy(), sign * g.numpy()) for a, g in zip(activations, gradients, strict=True)]
        maps = {
            method: _to_heatmap([_WEIGHERS[method](a, g) for a, g in pairs], grey.shape)
            for method in methods
        }
        return replace(verdict, heatmap=maps[methods[0]], heatmaps=maps)

    def _check(self, grey: np.ndarray, colour: float, features: np.ndarray) -> InputCheck:
        problem = pixel_problem(grey, colour)
        if problem is not None:
            return InputCheck(False, problem)
        if self._gate is None:
            return InputCheck(True)
        graded = self._metadata.population_check
        return self._gate.check(features, graded.unusual_threshold if graded else None)

    def _verdict(
        self, probability: float, heatmap: np.ndarray | None, check: InputCheck
    ) -> Prediction:
        index = 1 if probability >= self._threshold else 0
        label = self._class_names[index]
        sets = self._metadata.conformal
        members = sets.prediction_set(probability, self._threshold) if sets else (label,)
        decision = decide(members)
        return Prediction(
            probability, label, self._threshold, heatmap, check,
            prediction_set=members, decision=decision,
        )  # fmt: skip

    def _model_input(self, pixels: tf.Tensor) -> tf.Tensor:
        return to_model_input(pixels, self._image_size)[tf.newaxis]

    def _predict_graph(self, pixels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        self._traces["predict"] += 1  # Python side effect: runs only while tracing
        logit, features = self._scoring_model(self._model_input(pixels), training=False)
        return tf.sigmoid(tf.cast(logit[0, 0], tf.float32)), features[0]

    def _explain_graph(self, pixels: tf.Tensor) -> tuple[tf.Tensor, ...]:
        self._traces["explain"] += 1
        inputs = self._model_input(pixels)
        with tf.GradientTape() as tape:
            # Watching the input records every op, so the gradient reaches the layer even
            # when the model's weights are frozen.
            tape.watch(inputs)
            activations, logit, features = self._gradient_model(inputs, training=False)
        # One backward pass reaches every explained layer (an ensemble's members).
        gradients = tape.gradient(logit, activations)
        probability = tf.sigmoid(tf.cast(logit[0, 0], tf.float32))
        first = [a[0] for a in activations], [g[0] for g in gradients]
        return probability, *first, features[0]


def _as_metadata(model: keras.Model, metadata: ModelMetadata | Mapping[str, Any]) -> ModelMetadata:
    """Check ``metadata`` (a plain dict gets defaults) and that it fits the model's input."""
    if not isinstance(metadata, ModelMetadata):
        if not isinstance(metadata, Mapping):
            raise ModelLoadError("The model metadata must be a JSON object.")
        defaults = {"backbone": "unknown", "threshold": 0.5, "image_size": model.input_shape[1]}
        metadata = ModelMetadata.from_dict({**defaults, **metadata})
    if model.input_shape[1] not in (None, metadata.image_size):
        raise ModelLoadError(
            f"The model metadata says {metadata.image_size} px but the model takes "
            f"{model.input_shape[1]} px images."
        )
    return metadata


def _as_grey_uint8(pixels: np.ndarray) -> np.ndarray:
    """Any ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` 0-255 array -> uint8 grey."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        array = np.rint(np.clip(np.nan_to_num(array.astype(np.float32)), 0, 255)).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    elif array.ndim == 3 and array.shape[-1] in (3, 4):
        array = cv2.cvtColor(np.ascontiguousarray(array[..., :3]), cv2.COLOR_RGB2GRAY)
    if array.ndim != 2 or min(array.shape) < 1:
        raise InvalidImageError("The image must be a greyscale array of shape (height, width).")
    return array


def _gradcam(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Grad-CAM: channels weighted by their mean gradient. ``(h, w, c)`` -> ``(h, w)``."""
    weights = gradients.astype(np.float64).mean(axis=(0, 1))
    return np.maximum(activations.astype(np.float64) @ weights, 0.0)


def _gradcam_plus_plus(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Grad-CAM++ with the exponential-score closed form. ``(h, w, c)`` -> ``(h, w)``."""
    activations = activations.astype(np.float64)
    gradients = gradients.astype(np.float64)
    squared = gradients**2
    denominator = 2.0 * squared + activations.sum(axis=(0, 1)) * squared * gradients
    alphas = squared / np.where(denominator != 0.0, denominator, 1.0)
    weights = (alphas * np.maximum(gradients, 0.0)).sum(axis=(0, 1))
    return np.maximum(activations @ weights, 0.0)


#: How each method weighs the activations by their gradients.
_WEIGHERS = {"gradcam": _gradcam, "gradcam++": _gradcam_plus_plus}


def _to_heatmap(cams: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Resize ReLU'd maps to ``shape`` ``(H, W)``, add them and scale to [0, 1] (0 if flat).

    Grad-CAM maps of a pooled linear head are in the logit's units (each location's share of
    it), so an ensemble's members' maps, at their own resolutions, add up to the map of the
    mean logit without any per-member rescaling.
    """
    total = np.zeros(shape, dtype=np.float32)
    for cam in cams:
        cam = np.nan_to_num(cam, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
        total += cv2.resize(cam, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    peak = float(total.max(initial=0.0))
    if peak <= 1e-12:
        return np.zeros(shape, dtype=np.float32)
    total /= peak
    return np.clip(total, 0.0, 1.0, out=total)

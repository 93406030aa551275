"""Predictions and Grad-CAM heatmaps for one loaded model.

A :class:`Predictor` is made once per model. It builds the explaining model (input -> explained
activations, logit and pooled features) once and compiles its ``tf.function`` steps with fixed
input signatures (a greyscale uint8 image of any size; a batch of model inputs), so repeated
calls neither rebuild nor retrace anything and memory stays flat. Every step runs
:func:`cxr_core.imaging.preprocess.to_model_input` in a graph: the same resize and channel handling
that training uses.

Every bundled model's head is global average pooling and linear layers, so Grad-CAM equals CAM
(:mod:`cxr_core.explain.cam`): ``explain`` and ``explain_batch`` take ONE forward pass through the
explained layers, the logit and the pooled features (prediction, both maps and the input check
together) and weigh the activations by the head's weights; no backward pass. A model whose head
is not linear (or a ``layer_name`` that does not feed the pooling) keeps the gradient path: one
forward and one backward pass from the logit to the explained layer. Either way the predicted
class is explained: ``+logit`` for PNEUMONIA and ``-logit`` for NORMAL, as in Selvaraju et al.
(2017); Grad-CAM++ (Chattopadhay et al., 2018) uses the closed form for an exponential score,
which needs only first-order gradients, so both maps come from the same pass. ``explain_batch``
scores several images in one batch (the serving worker's micro-batches,
:mod:`cxr_core.inference.serving`). Nothing here writes files or draws on screen (``overlay`` lives
in
:mod:`cxr_core.explain.heatmap`, re-exported here).
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

from cxr_core.errors import ConfigError, InvalidImageError, ModelLoadError
from cxr_core.explain.cam import (
    WEIGHERS,
    constant_gradients,
    find_last_conv_layer,
    linear_head,
    resolve_layers,
    to_heatmap,
    unbatch,
)
from cxr_core.explain.heatmap import overlay
from cxr_core.imaging.preprocess import to_model_input
from cxr_core.imaging.raster import mean_chroma
from cxr_core.inference.input_check import (
    InputCheck,
    InputGate,
    gate_path,
    load_gate,
    pixel_problem,
    pooled_output,
)
from cxr_core.sidecar import ModelMetadata
from cxr_core.stats.conformal import decide

__all__ = ["METHODS", "Prediction", "Predictor", "find_last_conv_layer", "overlay"]

#: Heatmap methods that :meth:`Predictor.explain` accepts.
METHODS = ("gradcam", "gradcam++")


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
            (:class:`cxr_core.inference.input_check.InputCheck`); a refused image's verdict must
            not be shown
            as one. ``accepted`` is True with no reason when the model has no input check
            and the pixel checks pass.
        heatmaps: Every map computed, by method (``"gradcam"``, ``"gradcam++"``): one entry
            from :meth:`Predictor.explain`, all of :data:`METHODS` from
            :meth:`Predictor.explain_all`; empty when only a prediction was asked for.
        prediction_set: The class names in the conformal set (:mod:`cxr_core.stats.conformal`);
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


class Predictor:
    """Probability, label and Grad-CAM for one loaded classifier.

    Args:
        model: A classifier from :func:`cxr_core.model.build.build_model` or ``load_model``: input
            ``(batch, s, s, 3)`` raw 0-255 pixels, a linear layer named ``logit`` and a
            sigmoid output.
        metadata: The model's checked sidecar (:class:`cxr_core.sidecar.ModelMetadata`), or a
            plain dict of its keys: ``threshold`` (default 0.5), ``image_size`` (default the
            model's input side), ``class_names`` and ``last_conv_layer`` are used.
        layer_name: The layer to explain; overrides ``metadata.gradcam_layers`` (an
            ensemble's members' last conv layers, explained together), then
            ``metadata.last_conv_layer``, then :func:`find_last_conv_layer`.
        gate: The model's fitted input check (:mod:`cxr_core.inference.input_check`), or None for
        pixel
            checks only.
        force_gradients: Take the gradient path even when the head is linear (for tests and
            benchmarks that compare the two).

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
        force_gradients: bool = False,
    ) -> None:
        self._model = model
        self._gate = gate
        self._metadata = _as_metadata(model, metadata)
        self._threshold = self._metadata.threshold
        self._image_size = self._metadata.image_size
        self._class_names = self._metadata.class_names
        self._layer_names = resolve_layers(model, self._metadata, layer_name)
        try:
            logit = model.get_layer("logit")
        except ValueError:
            raise ModelLoadError("The model has no layer named 'logit' to explain.") from None
        convs = [model.get_layer(name).output for name in self._layer_names]
        features = pooled_output(model)
        # Built once: a new keras.Model per call would leak graphs and cost a rebuild each time.
        self._gradient_model = keras.Model(model.inputs, [convs, logit.output, features])
        self._scoring_model = keras.Model(model.inputs, [logit.output, features])
        self._head = None if force_gradients else linear_head(model, self._layer_names)
        self._traces = {"input": 0, "predict": 0, "explain": 0}
        image = [tf.TensorSpec((None, None), tf.uint8)]
        batch = [tf.TensorSpec((None, self._image_size, self._image_size, 3), tf.float32)]
        self._input_step = tf.function(self._input_graph, input_signature=image)
        self._predict_step = tf.function(self._predict_graph, input_signature=image)
        explain = self._gradient_graph if self._head is None else self._forward_graph
        self._explain_step = tf.function(explain, input_signature=batch)

    @classmethod
    def from_path(cls, path: str | Path, layer_name: str | None = None) -> Predictor:
        """Load a model saved by :func:`cxr_core.model.build.save_model` and wrap it.

        Raises:
            ModelLoadError: The model or its sidecar is missing, corrupt or not a classifier.
        """
        from cxr_core.model.build import load_model

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
    def explains_from_forward_pass(self) -> bool:
        """Whether heatmaps come from the forward pass alone (a linear head: CAM)."""
        return self._head is not None

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
        return self._explained([pixels], [colour], (method,))[0]

    def explain_all(self, pixels: np.ndarray, colour: float = 0.0) -> Prediction:
        """Score one image and explain it with every method, from one pass.

        Grad-CAM and Grad-CAM++ weigh the same activations by the same first-order gradients,
        so both maps cost one pass (a forward pass alone under a linear head); a viewer can
        then switch between them without a model call.

        Args:
            pixels: ``(H, W)`` uint8 greyscale, 0-255, as for :meth:`predict`.
            colour: As for :meth:`predict`.

        Returns:
            A :class:`Prediction` whose ``heatmaps`` holds a ``(H, W)`` float32 map in [0, 1]
            for each of :data:`METHODS`; ``heatmap`` is the Grad-CAM one.
        """
        return self._explained([pixels], [colour], METHODS)[0]

    def warm_up(self, pixels: np.ndarray) -> None:
        """Trace and run every step once (alone and in a batch of two) on an image shaped like
        an upload, so the first real one pays no tracing; results are discarded."""
        self._predict_step(_as_grey_uint8(pixels))
        self._explained([pixels], [0.0], METHODS)
        self._explained([pixels, pixels[: max(1, pixels.shape[0] * 3 // 4)]], [0.0, 0.0], METHODS)

    def explain_batch(
        self, images: Sequence[np.ndarray], colours: Sequence[float] | None = None
    ) -> list[Prediction]:
        """Score and explain several images (any sizes) with every method, in one batch.

        Under a linear head the batch takes one forward pass; otherwise each image takes the
        gradient path in turn. Each result is what :meth:`explain_all` gives for that image
        alone, up to float rounding of the batched kernels.

        Args:
            images: ``(H, W)`` uint8 greyscale images, as for :meth:`predict`.
            colours: Each file's mean chroma, as for :meth:`predict`; zeros by default.

        Returns:
            One :class:`Prediction` per image, in order, as from :meth:`explain_all`.
        """
        colours = [0.0] * len(images) if colours is None else list(colours)
        if len(colours) != len(images):
            raise ConfigError(
                f"colours must give one value per image. Received: {len(colours)} for "
                f"{len(images)} images"
            )
        return self._explained(list(images), colours, METHODS) if images else []

    def _explained(
        self, images: list[np.ndarray], colours: list[float], methods: tuple[str, ...]
    ) -> list[Prediction]:
        greys = [_as_grey_uint8(pixels) for pixels in images]
        colours = [max(c, mean_chroma(p)) for c, p in zip(colours, images, strict=True)]
        inputs = [self._input_step(grey) for grey in greys]
        if self._head is None:
            outputs = [self._explain_step(x[tf.newaxis]) for x in inputs]
        else:
            outputs = [self._explain_step(tf.stack(inputs))]
        # Per image: (probability, activations per layer, gradients per layer or None, features)
        rows = [row for output in outputs for row in unbatch(output, self._head is not None)]
        weights = None if self._head is None else self._head.weights()
        results = []
        for grey, colour, (probability, activations, gradients, features) in zip(
            greys, colours, rows, strict=True
        ):
            verdict = self._verdict(probability, None, self._check(grey, colour, features))
            # d(-logit)/dA = -d(logit)/dA: NORMAL is explained without a second pass.
            sign = 1.0 if verdict.label == self._class_names[1] else -1.0
            if weights is not None:
                gradients = [
                    constant_gradients(w, a, sign)
                    for w, a in zip(weights, activations, strict=True)
                ]
            else:
                gradients = [sign * g for g in gradients]
            pairs = list(zip(activations, gradients, strict=True))
            maps = {
                method: to_heatmap([WEIGHERS[method](a, g) for a, g in pairs], grey.shape)
                for method in methods
            }
            results.append(replace(verdict, heatmap=maps[methods[0]], heatmaps=maps))
        return results

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

    def _input_graph(self, pixels: tf.Tensor) -> tf.Tensor:
        self._traces["input"] += 1  # Python side effect: runs only while tracing
        return to_model_input(pixels, self._image_size)

    def _predict_graph(self, pixels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        self._traces["predict"] += 1
        logit, features = self._scoring_model(self._model_input(pixels), training=False)
        return tf.sigmoid(tf.cast(logit[0, 0], tf.float32)), features[0]

    def _forward_graph(self, inputs: tf.Tensor) -> tuple[tf.Tensor, ...]:
        self._traces["explain"] += 1
        activations, logit, features = self._gradient_model(inputs, training=False)
        return tf.sigmoid(tf.cast(logit[:, 0], tf.float32)), activations, features

    def _gradient_graph(self, inputs: tf.Tensor) -> tuple[tf.Tensor, ...]:
        self._traces["explain"] += 1
        with tf.GradientTape() as tape:
            # Watching the input records every op, so the gradient reaches the layer even
            # when the model's weights are frozen.
            tape.watch(inputs)
            activations, logit, features = self._gradient_model(inputs, training=False)
            # Images of a batch are independent at inference: the sum's gradient is each one's.
            total = tf.reduce_sum(logit)
        # One backward pass reaches every explained layer (an ensemble's members).
        gradients = tape.gradient(total, activations)
        probability = tf.sigmoid(tf.cast(logit[:, 0], tf.float32))
        return probability, activations, gradients, features


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

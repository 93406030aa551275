"""Grad-CAM without a backward pass, for heads that are linear in pooled features.

When the explained layer's activations ``A`` (``h x w x c``) reach the logit only through global
average pooling and linear layers (``Dropout``, linear ``Dense``, ``Average``, ``Add``), the
logit is ``sum_k W_k * mean_ij A_ijk + b`` and its gradient is the same at every location:
``d logit / d A_ijk = W_k / (h w)``. Grad-CAM then equals CAM (Zhou et al. 2016; Selvaraju et
al. 2017, section 3.1), and Grad-CAM++'s closed form needs only the same constant gradient, so
both maps come from the forward pass alone. Every model this project builds has such a head;
an ensemble too, since a mean of members' (calibrated) logits is still linear in each member's
pooled features.

:func:`linear_head` walks the functional graph back from the ``logit`` layer and returns a
:class:`LinearHead` when the head qualifies, else None (the caller keeps the gradient path).
The weights are read from the layers' variables on every call, so calibration folded into the
model later (:func:`cxr_core.stats.calibration.fold_into_model`) is seen at once.

This module also holds what both paths share: which layer is explained
(:func:`find_last_conv_layer`, :func:`resolve_layers`), how each method weighs activations by
gradients (:data:`WEIGHERS`) and how per-layer maps become one heatmap (:func:`to_heatmap`).
:class:`cxr_core.inference.predictor.Predictor` is the one caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import keras
import numpy as np

from cxr_core.errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    from cxr_core.sidecar import ModelMetadata

__all__ = [
    "WEIGHERS",
    "LinearHead",
    "constant_gradients",
    "find_last_conv_layer",
    "linear_head",
    "resolve_layers",
    "to_heatmap",
    "unbatch",
]

_PASS_THROUGH = (keras.layers.Dropout, keras.layers.Identity)
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


def resolve_layers(
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


class _NotLinear(Exception):
    """The head contains a layer this analysis cannot express linearly."""


@dataclass(frozen=True, eq=False)
class LinearHead:
    """The logit as a linear function of the explained layers' pooled activations.

    Attributes:
        model: The classifier.
        layer_names: The explained layers, in the order :meth:`weights` returns them.
    """

    model: keras.Model
    layer_names: tuple[str, ...]

    def weights(self) -> list[np.ndarray]:
        """``d logit / d pooled activations`` of each explained layer: ``(c,)`` float64."""
        tensor = self.model.get_layer("logit").output
        coefficients, _ = _express(tensor, self.layer_names)
        return [coefficients[name][:, 0] for name in self.layer_names]


def linear_head(model: keras.Model, layer_names: Sequence[str]) -> LinearHead | None:
    """The model's :class:`LinearHead` for ``layer_names``, or None if the head is not linear.

    Args:
        model: A flat functional classifier with a ``logit`` layer of one unit.
        layer_names: The layers Grad-CAM explains (one, or one per ensemble member).

    Returns:
        A :class:`LinearHead` when the logit depends on every named layer only through global
        average pooling and linear layers; None otherwise (a nonlinear head, a layer that does
        not feed the pooling directly, a logit of several units).
    """
    try:
        head = LinearHead(model, tuple(layer_names))
        weights = head.weights()
    except (_NotLinear, KeyError, ValueError, AttributeError, IndexError):
        return None
    if any(w.ndim != 1 or not np.isfinite(w).all() for w in weights):
        return None
    return head


def constant_gradients(weights: np.ndarray, activations: np.ndarray, sign: float) -> np.ndarray:
    """The gradient of ``sign * logit`` w.r.t. ``(h, w, c)`` activations under a linear head.

    Returns:
        A read-only ``(h, w, c)`` float64 view, ``sign * weights / (h w)`` at every location:
        what a backward pass would give, up to float rounding.
    """
    height, width = activations.shape[:2]
    per_location = sign * np.asarray(weights, np.float64) / float(height * width)
    return np.broadcast_to(per_location, activations.shape)


def _history(tensor) -> tuple[keras.layers.Layer, list]:
    operation, node_index, _ = tensor._keras_history
    return operation, list(operation._inbound_nodes[node_index].input_tensors)


def _express(tensor, sources: Sequence[str]) -> tuple[dict[str, np.ndarray | None], np.ndarray]:
    """``tensor`` (``(batch, d)``) as ``sum_s pooled_s @ M_s + b``: ``({s: M_s}, b)``; an
    ``M_s`` of None is the identity (pooled features themselves, no matrix built)."""
    layer, inputs = _history(tensor)
    if isinstance(layer, keras.layers.GlobalAveragePooling2D):
        if layer.keepdims or layer.data_format != "channels_last" or len(inputs) != 1:
            raise _NotLinear(layer.name)
        source = inputs[0]._keras_history[0].name
        if source not in sources:
            raise _NotLinear(layer.name)
        return {source: None}, np.zeros(int(inputs[0].shape[-1]))
    if isinstance(layer, _PASS_THROUGH) or _is_linear_activation(layer):
        return _express(inputs[0], sources)
    if isinstance(layer, keras.layers.Dense):
        if layer.activation is not keras.activations.linear or len(inputs) != 1:
            raise _NotLinear(layer.name)
        kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float64)
        bias = (
            np.asarray(keras.ops.convert_to_numpy(layer.bias), np.float64)
            if layer.use_bias
            else np.zeros(kernel.shape[1])
        )
        coefficients, offset = _express(inputs[0], sources)
        combined = {k: kernel if m is None else m @ kernel for k, m in coefficients.items()}
        return combined, offset @ kernel + bias
    if isinstance(layer, keras.layers.Add | keras.layers.Average):
        parts = [_express(t, sources) for t in inputs]
        scale = 1.0 / len(parts) if isinstance(layer, keras.layers.Average) else 1.0
        total: dict[str, np.ndarray] = {}
        for coefficients, offset in parts:
            for key, matrix in coefficients.items():
                matrix = np.eye(len(offset)) if matrix is None else matrix
                total[key] = total.get(key, 0.0) + scale * matrix
        return total, scale * sum(offset for _, offset in parts)
    raise _NotLinear(layer.name)


def _is_linear_activation(layer: keras.layers.Layer) -> bool:
    return (
        isinstance(layer, keras.layers.Activation) and layer.activation is keras.activations.linear
    )


def unbatch(output: tuple, forward_only: bool) -> list[tuple]:
    """A step's batched tensors -> one ``(probability, activations, gradients, features)``
    tuple of NumPy values per image (``gradients`` None on the forward-only path)."""
    if forward_only:
        probabilities, activations, features = output
        gradients = None
    else:
        probabilities, activations, gradients, features = output
    probabilities, features = probabilities.numpy(), features.numpy()
    activations = [a.numpy() for a in activations]
    gradients = None if gradients is None else [g.numpy() for g in gradients]
    return [
        (
            float(probabilities[i]),
            [a[i] for a in activations],
            None if gradients is None else [g[i] for g in gradients],
            features[i],
        )
        for i in range(len(probabilities))
    ]


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
WEIGHERS = {"gradcam": _gradcam, "gradcam++": _gradcam_plus_plus}


def to_heatmap(cams: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Resize ReLU'd ``(h, w)`` maps to ``shape`` ``(H, W)``, add them, scale to [0, 1] (0 if flat).

    Grad-CAM maps of a pooled linear head are in the logit's units (each location's share of
    it), so an ensemble's members' maps, at their own resolutions, add up to the map of the
    mean logit without any per-member rescaling.
    """
    # Resizing is linear: maps of one resolution are added first and resized once.
    by_size: dict[tuple[int, ...], np.ndarray] = {}
    for cam in cams:
        cam = np.nan_to_num(cam, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
        by_size[cam.shape] = by_size[cam.shape] + cam if cam.shape in by_size else cam
    total = None
    for cam in by_size.values():
        resized = cv2.resize(cam, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        total = resized if total is None else np.add(total, resized, out=total)
    if total is None:
        return np.zeros(shape, dtype=np.float32)
    peak = float(total.max(initial=0.0))
    if peak <= 1e-12:
        return np.zeros(shape, dtype=np.float32)
    total *= np.float32(1.0 / peak)
    return np.clip(total, 0.0, 1.0, out=total)

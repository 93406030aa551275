"""Several trained classifiers as one flat Keras model: the mean of their logits.

:func:`build_ensemble` copies each member's layers (with their weights) into one graph on a
shared image input. A member trained at another size gets a ``Resizing`` layer in front, so the
ensemble takes one image size like any other model. Member 0 keeps its ``pool`` layer's name, so
the input check (:mod:`cxr_core.inference.input_check`), fitted on that member's pooled features,
works unchanged;
every other layer is prefixed ``m<i>_``. The members' logits are averaged and pass through a
new ``logit`` layer (identity until calibration folds Platt scaling into it) and a sigmoid
``probability``, the same head contract as :func:`cxr_core.model.build.build_model`. Grad-CAM
explains
the ensemble through every member's last convolutional layer (:func:`explained_layers`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers

from cxr_core.errors import ConfigError, ModelLoadError
from cxr_core.model.build import FEATURE_LAYER

__all__ = ["build_ensemble", "explained_layers", "member_prefix"]


def member_prefix(index: int) -> str:
    """The prefix of member ``index``'s layer names in the ensemble, e.g. ``"m1_"``."""
    return f"m{index}_"


def _renamed_clone(prefix: str, keep_pool: bool):
    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        name = layer.name
        config["name"] = name if keep_pool and name == FEATURE_LAYER else prefix + name
        return layer.__class__.from_config(config)

    return clone


def _copy_member(member: keras.Model, pixels: keras.KerasTensor, index: int) -> keras.KerasTensor:
    """Apply a renamed copy of ``member`` (weights included) to ``pixels``; return its logit."""
    prefix = member_prefix(index)
    clone = keras.models.clone_model(
        member, input_tensors=pixels, clone_function=_renamed_clone(prefix, index == 0)
    )
    for original in member.layers:
        if isinstance(original, layers.InputLayer):
            continue
        kept = index == 0 and original.name == FEATURE_LAYER
        copy = clone.get_layer(original.name if kept else prefix + original.name)
        copy.set_weights(original.get_weights())
        # Normalization derives its mean and variance from the stored state only here (a
        # saved model does this on load; set_weights does not).
        if hasattr(copy, "finalize_state"):
            copy.finalize_state()
    return clone.get_layer(prefix + "logit").output


def build_ensemble(members: Sequence[keras.Model], image_size: int) -> keras.Model:
    """One model whose logit is the mean of the members' logits.

    Args:
        members: Two or more classifiers from :func:`cxr_core.model.build.build_model` (square
            ``(s, s, 3)`` inputs of raw 0-255 pixels, layers ``pool`` and ``logit``).
        image_size: The ensemble's input side; members of another size resize inside.

    Returns:
        A flat functional model ``(batch, image_size, image_size, 3) -> (batch, 1)``.

    Raises:
        ConfigError: Fewer than two members.
        ModelLoadError: A member lacks the ``pool`` or ``logit`` layer.
    """
    if len(members) < 2:
        raise ConfigError(f"An ensemble needs two or more members. Received: {len(members)}")
    for member in members:
        names = {layer.name for layer in member.layers}
        if not {FEATURE_LAYER, "logit"} <= names:
            raise ModelLoadError(f"Member {member.name!r} has no 'pool' and 'logit' layers.")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    logits = []
    for index, member in enumerate(members):
        side = member.input_shape[1]
        pixels = inputs
        if side != image_size:
            resize = layers.Resizing(
                side, side, antialias=True, name=f"{member_prefix(index)}resize"
            )
            pixels = resize(inputs)
        logits.append(_copy_member(member, pixels, index))
    mean = layers.Average(name="mean_logit")(logits)
    logit = layers.Dense(1, name="logit")
    combined = logit(mean)
    logit.set_weights([np.ones((1, 1), np.float32), np.zeros((1,), np.float32)])
    probability = layers.Activation("sigmoid", dtype="float32", name="probability")(combined)
    return keras.Model(inputs, probability, name="cxr_ensemble")


def explained_layers(members: Sequence[keras.Model]) -> list[str]:
    """The ensemble's layer names Grad-CAM explains: each member's last conv layer, renamed."""
    from cxr_core.explain.cam import find_last_conv_layer

    return [member_prefix(i) + find_last_conv_layer(m) for i, m in enumerate(members)]

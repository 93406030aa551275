"""Platt scaling of the classifier's logit, folded into the model.

A network fine-tuned with class weights and label smoothing ranks well but its probabilities
are not frequencies: on the official test split the previous bundled model gave a median
probability of pneumonia of 0.61 to healthy children (ECE 0.193). Platt scaling (Platt 1999)
fits ``p = sigmoid(a * logit + b)`` by logistic regression on held-out scores. Fitted on the
validation scores pooled over the stress suite (:mod:`cxr_core.evaluation.stress`), it is fitted on
images that are partly unlike the training images, as new patients' images will be.

The fitted map is folded into the model's final ``logit`` Dense layer (``w' = a w``,
``c' = a c + b``), so every user of the model - prediction, Grad-CAM, evaluation, the stress
suite - sees calibrated probabilities without knowing about calibration; ``a > 0`` keeps the
ranking and the Grad-CAM maps, whose sign and relative size do not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sklearn.linear_model import LogisticRegression

from cxr_core.errors import DataError

if TYPE_CHECKING:  # fitting needs no TensorFlow (the app's Evaluate page imports this)
    import keras

__all__ = ["PlattScaling", "fit_platt", "fold_into_model"]


@dataclass(frozen=True)
class PlattScaling:
    """``calibrated logit = scale * logit + bias``; ``scale > 0``."""

    scale: float
    bias: float

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated logits for raw ``logits`` (any shape)."""
        return self.scale * np.asarray(logits, np.float64) + self.bias


def fit_platt(labels: np.ndarray, logits: np.ndarray) -> PlattScaling:
    """Fit Platt scaling by (almost unregularised) logistic regression on one feature.

    Args:
        labels: ``(n,)`` 0/1.
        logits: ``(n,)`` the model's raw logits for the same cases.

    Returns:
        The fitted map. A fit whose slope would be zero or negative (a model that does not
        rank at all) raises instead.

    Raises:
        DataError: One class only, lengths that differ, or a fit that would invert the ranking.
    """
    y = np.asarray(labels).reshape(-1)
    x = np.asarray(logits, np.float64).reshape(-1, 1)
    if y.size != x.shape[0] or len(np.unique(y)) != 2:
        raise DataError("Calibration needs logits and labels of both classes, of equal length.")
    regression = LogisticRegression(C=1e6, max_iter=1000).fit(x, y)
    scale, bias = float(regression.coef_[0, 0]), float(regression.intercept_[0])
    if not np.isfinite([scale, bias]).all() or scale <= 0:
        raise DataError(f"Calibration failed: the fitted slope is {scale:.3g} (must be > 0).")
    return PlattScaling(scale, bias)


def fold_into_model(model: keras.Model, scaling: PlattScaling) -> None:
    """Rewrite the model's ``logit`` layer in place so that it outputs calibrated logits."""
    layer = model.get_layer("logit")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel * scaling.scale, bias * scaling.scale + scaling.bias])

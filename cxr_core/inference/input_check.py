""" "Is this a frontal chest X-ray?" - the check an image passes before it gets a verdict.

A classifier answers every input: the previous bundled model called a blank grey image
PNEUMONIA at 0.963 and a photo of coins at 0.983. Before a verdict the app and the command
line ask two things:

1. Cheap pixel checks on the decoded image: a near-constant image (blank, a flat gradient) or
   one with strong colour (a photo, a screenshot) is not a radiograph.
2. How far the image's features lie from the training X-rays': the Mahalanobis distance of the
   model's pooled features (its ``pool`` layer) from the train images' mean, under a
   Ledoit-Wolf shrunk covariance (scikit-learn; Lee et al. 2018 use this distance to find
   out-of-distribution inputs). The threshold is a high quantile of the distances of the
   validation images, clean and under every perturbation of the stress suite: an X-ray from
   another scanner - blurrier, noisier, darker - is still an X-ray and must pass. (With the
   clean validation images alone the threshold refused 2 of the dataset's 16 full-resolution
   val X-rays; the nearest non-X-ray of the generated corpus lies 3 times farther.)

The fitted gate is stored beside the model as ``<model>.gate.npz`` (arrays only, read without
pickle) and described in the sidecar's ``input_gate`` entry with its version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf

from cxr_core import sidecar
from cxr_core.errors import DataError, ModelLoadError
from cxr_core.inference import population
from cxr_core.io import write_npz_atomic
from cxr_core.model.build import FEATURE_LAYER
from cxr_core.sidecar_reports import InputGateEntry

__all__ = [
    "GATE_VERSION",
    "MIN_CONTRAST",
    "MAX_COLOUR",
    "NOT_A_CHEST_XRAY",
    "InputCheck",
    "InputGate",
    "feature_model",
    "fit_gate",
    "gate_path",
    "load_gate",
    "pixel_problem",
    "pooled_output",
    "save_gate",
    "table_features",
]

GATE_VERSION = sidecar.GATE_VERSION
#: Smallest spread (1st to 99th percentile, grey levels) of a radiograph's pixels.
MIN_CONTRAST = 24.0
#: Largest mean chroma (max - min of R, G, B, as a share of 255) of a radiograph stored in colour.
MAX_COLOUR = 0.06
#: What a refused image is told.
NOT_A_CHEST_XRAY = (
    "This image is unlike the chest X-rays the model was trained on (children aged 1-5 from "
    "one hospital), so it gets no verdict."
)
#: Share of validation images (clean and stressed) whose distance the threshold keeps below it.
ACCEPT_QUANTILE = 0.995


@dataclass(frozen=True, eq=False)
class InputCheck:
    """The gate's answer for one image.

    Attributes:
        accepted: Whether the image may get a verdict.
        reason: Why it was refused (one plain sentence), or None.
        distance: Mahalanobis distance of its features, or None when no feature gate exists
            or a pixel check already refused it.
        threshold: The distance above which images are refused, or None.
        grade: ``typical``, ``unusual`` (a verdict with ``warning``) or ``refused``
            (:mod:`cxr_core.inference.population`).
        warning: Why an ``unusual`` verdict is less reliable (one sentence), or None.
    """

    accepted: bool
    reason: str | None = None
    distance: float | None = None
    threshold: float | None = None
    grade: str = "typical"
    warning: str | None = None

    def __post_init__(self) -> None:
        if not self.accepted and self.grade != "refused":
            object.__setattr__(self, "grade", "refused")


@dataclass(frozen=True, eq=False)
class InputGate:
    """A fitted feature gate.

    Attributes:
        location: ``(d,)`` mean of the train images' pooled features.
        precision: ``(d, d)`` inverse of their shrunk covariance.
        threshold: Distances above it are refused.
        fitted_on: Number of train images it was fitted on.
    """

    location: np.ndarray
    precision: np.ndarray
    threshold: float
    fitted_on: int

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distances of ``(n, d)`` features, float64 ``(n,)``."""
        centred = np.asarray(features, np.float64).reshape(len(features), -1) - self.location
        # (x P) . x row by row: one matrix product, not einsum's unoptimised triple loop.
        squared = np.sum((centred @ self.precision) * centred, axis=1)
        return np.sqrt(np.maximum(squared, 0))

    def check(self, features: np.ndarray, unusual: float | None = None) -> InputCheck:
        """Grade one image from its ``(d,)`` pooled features.

        Args:
            features: The image's pooled features.
            unusual: Distances above it (up to the refusal threshold) are graded ``unusual``;
                None grades every accepted image ``typical``.
        """
        distance = float(self.distances(np.asarray(features)[None])[0])
        graded = population.grade(distance, unusual, self.threshold)
        accepted = graded != "refused"
        reason = None if accepted else NOT_A_CHEST_XRAY
        warning = population.UNUSUAL_WARNING if graded == "unusual" else None
        return InputCheck(accepted, reason, distance, self.threshold, graded, warning)


def pixel_problem(pixels: np.ndarray, colour: float = 0.0) -> str | None:
    """Refuse what no feature is needed to refuse.

    Args:
        pixels: ``(H, W)`` decoded grey image, 0-255.
        colour: Mean chroma of the original file in [0, 1] (``DecodedImage.info["colour"]``).

    Returns:
        One sentence saying what is wrong, or None when the pixels could be a radiograph.
    """
    if colour > MAX_COLOUR:
        return "This image is in colour, which an X-ray is not, so it gets no verdict."
    pixels = np.asarray(pixels)
    # A regular subsample of at most ~65,000 pixels gives the same percentiles within a grey
    # level and keeps this check negligible beside the forward pass on a 10-megapixel image.
    step = max(1, int(np.sqrt(pixels.size / 65_536)))
    low, high = np.percentile(pixels[::step, ::step].astype(np.float32), (1, 99))
    if high - low < MIN_CONTRAST:
        return "This image is almost uniform (blank or a flat gradient), so it gets no verdict."
    return None


def pooled_output(model: keras.Model) -> keras.KerasTensor:
    """The pooled features of a classifier: its ``pool`` layer, else the logit layer's input."""
    if FEATURE_LAYER in {layer.name for layer in model.layers}:
        return model.get_layer(FEATURE_LAYER).output
    return model.get_layer("logit").input


def feature_model(model: keras.Model) -> keras.Model:
    """Return a model with the classifier's input that outputs its pooled features."""
    return keras.Model(model.input, pooled_output(model))


def table_features(
    model: keras.Model, table: pd.DataFrame, image_size: int, batch_size: int = 32
) -> np.ndarray:
    """Pooled features ``(len(table), d)`` of a table's images, in the table's order."""
    from cxr_core.imaging.scoring import input_batches

    extractor = feature_model(model)
    paths = [str(path) for path in table["path"]]
    batches = [extractor.predict_on_batch(b) for b in input_batches(paths, image_size, batch_size)]
    return np.asarray(np.concatenate(batches), np.float64)


def fit_gate(train_features: np.ndarray, val_features: np.ndarray) -> InputGate:
    """Fit the feature gate on train features; take its threshold from validation features.

    Args:
        train_features: ``(n, d)`` pooled features of the train images (n > 1).
        val_features: ``(m, d)`` pooled features of the validation images, clean and under
            the stress suite's perturbations (m >= 1).

    Returns:
        The gate; its threshold is the ``ACCEPT_QUANTILE`` quantile of validation distances.
    """
    if len(train_features) < 2 or len(val_features) < 1:
        raise DataError("The input check needs at least 2 train and 1 validation image.")
    estimator = LedoitWolf().fit(np.asarray(train_features, np.float64))
    gate = InputGate(estimator.location_, estimator.precision_, np.inf, len(train_features))
    threshold = float(np.quantile(gate.distances(val_features), ACCEPT_QUANTILE))
    return InputGate(gate.location, gate.precision, threshold, len(train_features))


def gate_path(model_path: str | Path) -> Path:
    """Where the gate of the model at ``model_path`` is stored."""
    return Path(model_path).with_suffix(".gate.npz")


def save_gate(gate: InputGate, path: str | Path) -> dict[str, Any]:
    """Write the gate atomically; return its sidecar entry (:class:`InputGateEntry` as JSON)."""
    path = Path(path)
    write_npz_atomic(
        path,
        compressed=True,
        version=np.array(GATE_VERSION),
        location=gate.location.astype(np.float32),
        precision=gate.precision.astype(np.float32),
        threshold=np.array(gate.threshold),
        fitted_on=np.array(gate.fitted_on),
    )
    return InputGateEntry(
        file=path.name,
        version=GATE_VERSION,
        method="Mahalanobis distance of pooled features, Ledoit-Wolf covariance",
        feature_layer=FEATURE_LAYER,
        threshold=gate.threshold,
        fitted_on=gate.fitted_on,
        accept_quantile=ACCEPT_QUANTILE,
        min_contrast=MIN_CONTRAST,
        max_colour=MAX_COLOUR,
    ).to_dict()


def load_gate(path: str | Path, feature_size: int) -> InputGate:
    """Read a gate written by :func:`save_gate`; raises ModelLoadError if unusable."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
        version = int(arrays["version"])
        location = arrays["location"].astype(np.float64)
        precision = arrays["precision"].astype(np.float64)
        threshold, fitted_on = float(arrays["threshold"]), int(arrays["fitted_on"])
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise ModelLoadError(f"input check {path.name} is unreadable: {error}") from None
    if version != GATE_VERSION:
        raise ModelLoadError(f"input check {path.name} has version {version}, not {GATE_VERSION}")
    if location.shape != (feature_size,) or precision.shape != (feature_size, feature_size):
        raise ModelLoadError(f"input check {path.name} does not fit this model's features")
    if not np.isfinite(threshold):
        raise ModelLoadError(f"input check {path.name} has no finite threshold")
    return InputGate(location, precision, threshold, fitted_on)

"""Does a heatmap say anything about the model? Deletion and insertion curves.

Petsiuk, Das and Saenko (2018, "RISE", BMVC) measure a saliency map by what happens to the
model's score when the pixels it ranks highest are removed first (*deletion*: the score should
fall fast, so a low area under the curve is good) or restored first onto a blurred copy
(*insertion*: the score should rise fast, a high area is good). A map that does no better than
a random map of the same smoothness tells the user nothing about the model, however plausible
it looks.

:func:`faithfulness_check` runs both curves for Grad-CAM, Grad-CAM++ and a random map over a
small sample (about 20 images and 10 steps: 66 model inputs per image, in a batch per map).
The score followed is the probability of the class the model chose for the image, which is the
class the maps explain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from cxr_core.errors import ConfigError, DataError

if TYPE_CHECKING:
    from cxr_core.inference.predictor import Predictor

__all__ = ["CURVES", "MAPS", "FaithfulnessResult", "faithfulness_check", "ordered_variants"]

#: The maps compared: the two explanation methods and a random baseline.
MAPS = ("gradcam", "gradcam++", "random")
#: The two curves of each map.
CURVES = ("deletion", "insertion")
_RANDOM_GRID = 7  # the random map's cells: as coarse as a 224 px EfficientNet's last conv layer


@dataclass(frozen=True, eq=False)
class FaithfulnessResult:
    """Deletion and insertion curves of each map over a sample.

    Attributes:
        fractions: Share of pixels deleted or inserted at each step, ``(steps + 1,)`` from 0 to 1.
        curves: ``{map: {curve: (n_images, steps + 1) float32}}``: the probability of each
            image's chosen class along each curve.
        files: The sampled files' names (no folders).
    """

    fractions: np.ndarray
    curves: dict[str, dict[str, np.ndarray]]
    files: tuple[str, ...]

    def area(self, method: str, curve: str) -> float:
        """Mean area under ``curve`` of ``method`` over the images (trapezoid rule, in [0, 1])."""
        values = self.curves[method][curve].mean(axis=0)
        return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(self.fractions)))

    def table(self) -> list[dict[str, object]]:
        """One row per map: its deletion and insertion areas and the margin over random."""
        rows = []
        for method in self.curves:
            deletion, insertion = self.area(method, "deletion"), self.area(method, "insertion")
            rows.append(
                {
                    "map": method,
                    "deletion AUC (lower is better)": round(deletion, 3),
                    "insertion AUC (higher is better)": round(insertion, 3),
                    "insertion - deletion": round(insertion - deletion, 3),
                }
            )
        return rows

    def beats_random(self, method: str) -> bool:
        """Whether ``method`` both deletes faster and inserts faster than the random map."""
        return self.area(method, "deletion") < self.area("random", "deletion") and self.area(
            method, "insertion"
        ) > self.area("random", "insertion")


def _random_map(side: int, rng: np.random.Generator) -> np.ndarray:
    cells = rng.random((_RANDOM_GRID, _RANDOM_GRID)).astype(np.float32)
    return cv2.resize(cells, (side, side), interpolation=cv2.INTER_LINEAR)


def ordered_variants(
    image: np.ndarray, saliency: np.ndarray, steps: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The deletion and insertion sequences of one image under one map.

    Args:
        image: ``(s, s)`` grey model input, 0-255.
        saliency: ``(s, s)`` map; higher means more important. Ties are broken at random.
        steps: Number of steps from none to all pixels (at least 2).
        rng: Source of the tie-breaking noise.

    Returns:
        ``{"deletion": (steps + 1, s, s), "insertion": (steps + 1, s, s)}`` float32: deletion
        paints the top-ranked pixels black; insertion restores them onto a blurred copy.
    """
    side = image.shape[0]
    jitter = rng.random(saliency.shape) * 1e-6
    order = np.argsort(-(saliency.astype(np.float64) + jitter), axis=None)
    blurred = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigmaX=side / 20)
    flat, blur_flat = image.astype(np.float32).ravel(), blurred.ravel()
    deletion = np.empty((steps + 1, flat.size), np.float32)
    insertion = np.empty((steps + 1, flat.size), np.float32)
    for step in range(steps + 1):
        top = order[: round(step / steps * flat.size)]
        deletion[step], insertion[step] = flat, blur_flat
        deletion[step, top] = 0.0
        insertion[step, top] = flat[top]
    shape = (steps + 1, side, side)
    return {"deletion": deletion.reshape(shape), "insertion": insertion.reshape(shape)}


def faithfulness_check(
    predictor: Predictor,
    paths: Sequence[str | Path],
    steps: int = 10,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> FaithfulnessResult:
    """Deletion and insertion curves of Grad-CAM, Grad-CAM++ and a random map.

    Each file is decoded as every score decodes it
    (:func:`cxr_core.imaging.scoring.decode_for_model`),
    explained once (:meth:`~cxr_core.inference.predictor.Predictor.explain_all`), and its
    ``3 maps x 2 curves x (steps + 1)`` variants are scored in one batch per map.

    Args:
        predictor: The model to check.
        paths: Image files (about 20 keep it to a minute on a CPU).
        steps: Steps per curve, 2 to 50.
        seed: Seed of the random map and of tie-breaking.
        progress: Called with ``(images done, total)`` after each image.

    Returns:
        A :class:`FaithfulnessResult`.

    Raises:
        ConfigError: ``steps`` is out of range.
        DataError: ``paths`` is empty or a file cannot be decoded.
    """
    import tensorflow as tf

    from cxr_core.errors import InvalidImageError
    from cxr_core.imaging.preprocess import to_model_input
    from cxr_core.imaging.scoring import decode_for_model

    if not (isinstance(steps, int) and 2 <= steps <= 50):
        raise ConfigError(f"steps must be an integer from 2 to 50. Received: steps={steps!r}")
    if len(paths) == 0:
        raise DataError("There are no images to check.")
    side, rng = predictor.image_size, np.random.default_rng(seed)
    logit_model = _logit_model(predictor.model)
    curves = {m: {c: np.empty((len(paths), steps + 1), np.float32) for c in CURVES} for m in MAPS}
    for index, path in enumerate(paths):
        try:
            decoded = decode_for_model(path)
        except InvalidImageError as error:
            raise DataError(f"{Path(path).name}: {error}") from None
        result = predictor.explain_all(decoded.pixels)
        pneumonia = result.label == predictor.class_names[1]
        grey = to_model_input(decoded.pixels, side).numpy()[..., 0]
        maps = {m: cv2.resize(result.heatmaps[m], (side, side)) for m in MAPS[:2]}
        maps["random"] = _random_map(side, rng)
        for m in MAPS:  # one batch per map: 2 x (steps + 1) inputs keep activations small
            variants = ordered_variants(grey, maps[m], steps, rng)
            stacked = np.repeat(np.concatenate([variants[c] for c in CURVES])[..., None], 3, -1)
            logits = logit_model(tf.constant(stacked), training=False)
            probability = tf.sigmoid(tf.cast(logits[:, 0], tf.float32)).numpy()
            chosen = probability if pneumonia else 1.0 - probability
            for position, c in enumerate(CURVES):
                curves[m][c][index] = chosen[position * (steps + 1) : (position + 1) * (steps + 1)]
        if progress is not None:
            progress(index + 1, len(paths))
    fractions = np.linspace(0.0, 1.0, steps + 1)
    return FaithfulnessResult(fractions, curves, tuple(Path(p).name for p in paths))


def _logit_model(model):  # noqa: ANN001, ANN202 - keras types stay out of this light module
    import keras

    return keras.Model(model.inputs, model.get_layer("logit").output)

"""One uploaded file analysed for the Diagnose page: decoded, explained and graded, as one value.

The app caches an :class:`UploadAnalysis` per file and model, so moving the opacity slider or
switching the explanation method never calls the model again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cxr_core.imaging.scoring import decode_for_model
from cxr_core.inference.population import with_age_check

__all__ = ["UploadAnalysis", "analyse_upload"]


@dataclass(frozen=True)
class UploadAnalysis:
    """What Diagnose shows of one file.

    Attributes:
        pixels: ``(H, W)`` uint8 greyscale as the model saw it (at most 1,024 px a side).
        heatmaps: Method name -> ``(H, W)`` uint8 map (0-255), one per explanation method.
        info: The decoder's technical fields (never patient fields).
        probability: PNEUMONIA probability.
        label: The verdict at the stored threshold.
        threshold: The model's threshold.
        accepted: Whether the input check let the image through.
        refusal: Why it did not, or None.
        decision: ``NORMAL``, ``PNEUMONIA`` or ``UNCERTAIN`` (the conformal set's decision).
        prediction_set: The class names in the conformal set.
        grade: ``typical``, ``unusual`` or ``refused``.
        warning: The sentence an unusual X-ray's verdict is shown with, or None.
        input_distance: The input check's feature distance, or None.
        input_threshold: The input check's refusal threshold, or None.
        analysed_at: When, in UTC, ISO 8601 to the second.
    """

    pixels: np.ndarray
    heatmaps: Mapping[str, np.ndarray]
    info: Mapping[str, object]
    probability: float
    label: str
    threshold: float
    accepted: bool
    refusal: str | None
    decision: str
    prediction_set: tuple[str, ...]
    grade: str
    warning: str | None
    input_distance: float | None
    input_threshold: float | None
    analysed_at: str


def analyse_upload(predictor: Any, content: bytes, name: str) -> UploadAnalysis:
    """Decode one uploaded file, score it and explain it with every method, from one pass.

    Args:
        predictor: A :class:`cxr_core.inference.predictor.Predictor`, or a model's shared
            :class:`cxr_core.inference.serving.InferenceWorker` (concurrent uploads batched).
        content: The file's bytes (JPEG, PNG or DICOM).
        name: The uploaded name, for error wording only.

    Returns:
        The :class:`UploadAnalysis`. A JPEG is decoded reduced and anything larger than 1,024
        px shrunk before the model sees it, so no full-size copy, heatmap or overlay is made.

    Raises:
        InvalidImageError: The file is not a usable image (the message says why).
    """
    # The decode of every score (evaluate, the Evaluate page, the stress suite, predict).
    decoded = decode_for_model(content, filename=name)
    pixels = decoded.pixels
    result = predictor.explain_all(pixels, colour=float(decoded.info.get("colour", 0.0)))
    check = with_age_check(result.input_check, decoded.info)
    return UploadAnalysis(
        pixels=pixels,
        # Kept as uint8: a quarter of the float32 maps' memory in the cache.
        heatmaps={
            method: np.rint(heatmap * 255).astype(np.uint8)
            for method, heatmap in result.heatmaps.items()
        },
        info=dict(decoded.info),
        probability=result.probability,
        label=result.label,
        threshold=result.threshold,
        accepted=result.input_check.accepted,
        refusal=result.input_check.reason,
        decision=result.decision or result.label,
        prediction_set=tuple(result.prediction_set),
        grade=check.grade,
        warning=check.warning,
        input_distance=result.input_check.distance,
        input_threshold=result.input_check.threshold,
        analysed_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )

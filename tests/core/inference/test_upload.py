"""cxr_core.inference.upload: one uploaded file analysed into a typed, frozen value."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from cxr_core.errors import InvalidImageError
from cxr_core.inference.predictor import Predictor
from cxr_core.inference.upload import UploadAnalysis, analyse_upload


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_upload_becomes_one_frozen_analysis_that_matches_the_predictor(tiny_model_dir):
    predictor = Predictor.from_path(next(tiny_model_dir.glob("*.keras")))
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (1500, 1200), dtype=np.uint8)  # larger than 1,024: shrunk
    result = analyse_upload(predictor, _png(pixels), "scan.png")
    assert isinstance(result, UploadAnalysis)
    assert result.pixels.dtype == np.uint8 and max(result.pixels.shape) == 1024
    assert set(result.heatmaps) == {"gradcam", "gradcam++"}
    assert all(
        m.dtype == np.uint8 and m.shape == result.pixels.shape for m in result.heatmaps.values()
    )
    direct = predictor.explain_all(result.pixels)
    assert result.probability == pytest.approx(direct.probability, abs=1e-6)
    assert result.label == direct.label and result.threshold == direct.threshold
    assert result.decision in ("NORMAL", "PNEUMONIA", "UNCERTAIN")
    assert result.grade in ("typical", "unusual", "refused") and result.analysed_at.endswith(
        "+00:00"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.label = "NORMAL"  # type: ignore[misc]


def test_an_unreadable_upload_raises_the_one_sentence_error(tiny_model_dir):
    predictor = Predictor.from_path(next(tiny_model_dir.glob("*.keras")))
    with pytest.raises(InvalidImageError, match="not an image"):
        analyse_upload(predictor, b"<html>not an image</html>", "page.png")

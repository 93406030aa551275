"""A clinician's say on each verdict, saved as a dataset a model can be fitted to.

On the Diagnose page a reader answers "agree" or "the right answer is ..." for an image; the
image goes into a feedback folder in Kaggle's layout, ``<folder>/train/<LABEL>/``, so the folder
is a dataset root that ``scan``, ``train`` and the Train page read as they read Kaggle's::

    <folder>/train/PNEUMONIA/fb-3f9a0c1d2e4b.png     the pixels the model saw, as PNG
    <folder>/records/fb-3f9a0c1d2e4b.json           label, model output, model, time, file name

Nothing about the patient is kept: the image is re-encoded from its decoded pixels (no DICOM
header, no EXIF), its name is a digest of those pixels, and the record holds the uploaded file
name only after sanitising (letters, digits, ``.``, ``_``, ``-``; at most 80 characters). Every
write is atomic, and a second answer for the same image replaces the first (it moves between
label folders rather than being counted twice).
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from cxr_core.config import CLASS_NAMES
from cxr_core.errors import ConfigError, DataError
from cxr_core.io import write_bytes_atomic, write_json_atomic

__all__ = ["FeedbackRecord", "safe_name", "save_feedback"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 80


@dataclass(frozen=True)
class FeedbackRecord:
    """One answer, as stored in ``records/<id>.json``.

    Attributes:
        image_id: ``fb-`` and 12 hex digits of the pixels' digest (also the image's file stem).
        label: The reader's answer, a class name.
        agreed: Whether it is the model's output.
        model_output: The model's verdict at the time.
        probability: The model's probability of PNEUMONIA.
        model: The model's name.
        file_name: The uploaded file's name, sanitised.
        saved_at: ISO time (UTC).
    """

    image_id: str
    label: str
    agreed: bool
    model_output: str
    probability: float
    model: str
    file_name: str
    saved_at: str


def safe_name(name: str) -> str:
    """A file name reduced to letters, digits, ``.``, ``_`` and ``-`` (no folders), at most 80
    characters; ``"image"`` when nothing is left."""
    base = _UNSAFE.sub("_", Path(str(name).replace("\\", "/")).name).strip("._")
    return base[:_MAX_NAME] or "image"


def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")  # no metadata is written
    return buffer.getvalue()


def save_feedback(
    folder: str | Path,
    pixels: np.ndarray,
    label: str,
    *,
    model_output: str,
    probability: float,
    model: str,
    file_name: str,
) -> FeedbackRecord:
    """Store an image under the reader's label in ``folder``'s Kaggle layout.

    Args:
        folder: The feedback folder (set by the administrator); made if missing.
        pixels: ``(H, W)`` uint8 greyscale, the pixels the model scored.
        label: The reader's answer, one of ``CLASS_NAMES``.
        model_output: The model's verdict.
        probability: The model's probability of PNEUMONIA, in [0, 1].
        model: The model's name.
        file_name: The uploaded file's name (sanitised before it is stored).

    Returns:
        The stored :class:`FeedbackRecord`.

    Raises:
        ConfigError: ``label`` is not a class name.
        DataError: ``pixels`` is not a 2-D uint8 image, or the folder cannot be written.
    """
    if label not in CLASS_NAMES:
        raise ConfigError(f"label must be one of {', '.join(CLASS_NAMES)}. Received: {label!r}")
    array = np.asarray(pixels)
    if array.dtype != np.uint8 or array.ndim != 2 or min(array.shape) < 1:
        raise DataError("Feedback needs the image as a 2-D uint8 greyscale array.")
    image_id = "fb-" + hashlib.blake2b(array.tobytes(), digest_size=6).hexdigest()
    root = Path(folder)
    record = FeedbackRecord(
        image_id=image_id,
        label=label,
        agreed=label == model_output,
        model_output=str(model_output),
        probability=round(float(probability), 6),
        model=safe_name(model),
        file_name=safe_name(file_name),
        saved_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    try:
        write_bytes_atomic(root / "train" / label / f"{image_id}.png", _png_bytes(array))
        for other in CLASS_NAMES:
            if other != label:  # a changed answer moves the image, never duplicates it
                (root / "train" / other / f"{image_id}.png").unlink(missing_ok=True)
        write_json_atomic(root / "records" / f"{image_id}.json", asdict(record))
    except OSError as error:
        raise DataError(f"The feedback could not be saved: {error.strerror or error}") from None
    return record

"""What every decoder shares: the result, the limits, the refusals, the grey conversions.

:class:`DecodedImage` is what :func:`cxr_core.imaging.decode.read_image` returns, whichever
format the file was (:mod:`~cxr_core.imaging.raster` for JPEG and PNG,
:mod:`~cxr_core.imaging.dicom` for DICOM). The limits (:data:`MAX_BYTES`, :data:`MAX_PIXELS`,
:data:`MIN_SIDE`) are the pixel budget checked before anything is decoded, and the module-level
sentences are every refusal an upload can get, as :class:`InvalidImageError` messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cxr_core.errors import InvalidImageError

__all__ = [
    "MAX_BYTES",
    "MAX_PIXELS",
    "MIN_SIDE",
    "DecodedImage",
    "check_dimensions",
    "stretch",
    "to_grey",
]

#: Largest accepted image, in pixels (width x height of one frame).
MAX_PIXELS = 50_000_000
#: Largest accepted file, in bytes.
MAX_BYTES = 50 * 1024 * 1024
#: Smallest accepted side, in pixels.
MIN_SIDE = 32

EMPTY = "The file is empty."
NOT_AN_IMAGE = "The file is not an image; upload a JPEG, PNG or DICOM file."
DAMAGED = "The image is truncated or damaged and cannot be decoded."
TOO_MANY_PIXELS = "The image has more than 50 megapixels, too many to decode safely."
TOO_MANY_BYTES = "The file is larger than 50 MiB, the largest accepted."
NOT_A_FILE = "The path is a folder, FIFO or device, not a regular file."
TOO_SMALL = "The image is {width} x {height} pixels; each side must be at least 32 pixels."
UNSUPPORTED = "{name} images are not supported; upload a JPEG, PNG or DICOM file."
NO_DICOM_PIXELS = "The DICOM file contains no image."
DICOM_CODEC = "The DICOM image is compressed as {syntax}, which cannot be decoded here."
MISSING_FILE = "The file does not exist or cannot be read."

_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """One decoded image, ready for :func:`cxr_core.imaging.preprocess.to_model_input`.

    Attributes:
        pixels: ``(H, W)`` uint8 greyscale, 0-255, bone bright, upright (EXIF applied);
            read-only (copy it to draw on it).
        info: Technical fields only: ``format`` ("JPEG", "PNG", "DICOM"), ``width``,
            ``height``, ``bit_depth``, ``mode`` (Pillow mode) and ``colour`` (mean chroma of
            the stored pixels as a share of 255; 0 for grey files) or, for DICOM,
            ``photometric_interpretation``, ``modality``, ``view_position``, ``frames``,
            ``transfer_syntax``; ``note`` when something was done worth saying.
    """

    pixels: np.ndarray
    info: dict[str, str | int | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read-only like the dataclass: a cached upload cannot be changed by one of its users.
        self.pixels.flags.writeable = False

    def __repr__(self) -> str:
        return f"DecodedImage(shape={self.pixels.shape}, info={self.info!r})"


def check_dimensions(width: int, height: int) -> None:
    """Refuse an image over :data:`MAX_PIXELS` or with a side under :data:`MIN_SIDE`.

    Raises:
        InvalidImageError: :data:`TOO_MANY_PIXELS` or :data:`TOO_SMALL`.
    """
    if width * height > MAX_PIXELS:
        raise InvalidImageError(TOO_MANY_PIXELS)
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(TOO_SMALL.format(width=width, height=height))


def stretch(values: np.ndarray) -> np.ndarray:
    """Min-max scale any numeric array to uint8 0-255; a flat or empty image becomes zeros."""
    owned = isinstance(values, np.ndarray) and values.dtype == np.float32
    values = np.asarray(values, dtype=np.float32)
    # In place when the caller's float32 array is a temporary (the decoders' own).
    values = np.nan_to_num(values, copy=not owned, nan=0.0, posinf=0.0, neginf=0.0)
    if values.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    values -= low
    values *= np.float32(255.0 / (high - low))
    return np.rint(values, out=values).clip(0, 255).astype(np.uint8)


def to_grey(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` RGB -> float32 ``(H, W)`` with the ITU-R 601 weights."""
    values = np.asarray(values, dtype=np.float32)
    return values if values.ndim == 2 else values[..., :3] @ _LUMA.astype(np.float32)

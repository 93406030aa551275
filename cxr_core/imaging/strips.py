"""Reducing decoded images without whole-image float copies (used by
:mod:`cxr_core.imaging.decode`).

An image is read in strips of rows (about a quarter megapixel each); each strip is made
grey in float32 (ITU-R 601 weights, alpha composited on black) and box-reduced by a whole
factor, so the only full-size buffer is the decoder's own, in the file's own type.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["StripReader", "box_mean", "reduce_factor", "shrink", "strip_grey"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def reduce_factor(size: tuple[int, int], max_side: int | None) -> int:
    """The integer reduction that keeps the longer side at least ``max_side`` (1: none)."""
    return max(1, max(size) // max_side) if max_side else 1


StripReader = Callable[[int, int], np.ndarray]
#: Pixels converted to float at a time: bounds the float copies to about 12 MB.
_STRIP_PIXELS = 1 << 18


def strip_grey(
    size: tuple[int, int],
    read: StripReader,
    factor: int,
    full_scale: float,
    dtype: type = np.float32,
) -> tuple[np.ndarray, float]:
    """Grey values of an image read in strips of rows, reduced ``factor`` times by box means.

    Each strip is converted to float32 on its own (ITU-R 601 weights; alpha composites on
    black), so no float copy of the whole image is ever made.

    Returns:
        ``(H // factor, W // factor)`` grey values on the source's scale (float32, or
        rounded to uint8 when ``dtype`` is uint8), and the
        mean chroma (max - min of R, G, B) of a ~256 px version, as a share of full scale.
    """
    width, height = size
    chroma_factor = max(1, max(size) // 256)
    unit = factor * chroma_factor // math.gcd(factor, chroma_factor)
    rows = max(unit, _STRIP_PIXELS // max(1, width) // unit * unit)
    out = np.empty((height // factor, width // factor), dtype)
    chroma_sum, chroma_count = 0.0, 0
    for top in range(0, height // factor * factor, rows):
        bottom = min(top + rows, height // factor * factor)
        values = read(top, bottom).astype(np.float32)
        grey, rgb = _grey_of(values, full_scale)
        reduced = box_mean(grey, factor)
        if dtype is np.uint8:
            reduced = np.rint(reduced).clip(0, 255)
        out[top // factor : bottom // factor] = reduced
        if rgb is not None:
            small = box_mean(rgb, chroma_factor)
            chroma_sum += float((small.max(axis=-1) - small.min(axis=-1)).sum())
            chroma_count += small.shape[0] * small.shape[1]
    colour = chroma_sum / chroma_count / full_scale if chroma_count else 0.0
    return out, round(colour, 4)


def _grey_of(values: np.ndarray, full_scale: float) -> tuple[np.ndarray, np.ndarray | None]:
    """float32 rows -> (grey composited on black, RGB or None for grey data)."""
    if values.ndim == 2:
        return values, None
    channels = values.shape[-1]
    if channels == 1:
        return values[..., 0], None
    if channels == 2:  # grey + alpha
        return values[..., 0] * (values[..., 1] / full_scale), None
    grey = values[..., :3] @ _LUMA
    if channels == 4:
        grey *= values[..., 3] / full_scale
    return grey, values[..., :3]


def box_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` boxes (edges that do not fill a box are dropped)."""
    if factor == 1:
        return values
    height, width = values.shape[0] // factor, values.shape[1] // factor
    trimmed = values[: height * factor, : width * factor]
    shape = (height, factor, width, factor, *values.shape[2:])
    return trimmed.reshape(shape).mean(axis=(1, 3), dtype=np.float32)


def shrink(values: np.ndarray, factor: int) -> np.ndarray:
    """Box-reduce stored DICOM values ``factor`` times before any float conversion of the
    whole frame (OpenCV keeps uint8/uint16/int16; other types go through float32 strips)."""
    if factor == 1:
        return values
    size = (values.shape[1] // factor, values.shape[0] // factor)
    if values.dtype in (np.uint8, np.uint16, np.int16, np.float32) and values.ndim in (2, 3):
        return cv2.resize(values, size, interpolation=cv2.INTER_AREA)
    rows = max(factor, _STRIP_PIXELS // max(1, values.shape[1]) // factor * factor)
    parts = [
        box_mean(values[top : top + rows].astype(np.float32), factor)
        for top in range(0, size[1] * factor, rows)
    ]
    return np.concatenate(parts)

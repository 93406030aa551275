"""Bytes in, greyscale pixels out: JPEG, PNG and DICOM, read safely.

:func:`read_image` turns an uploaded file into a :class:`DecodedImage`: an ``(H, W)`` uint8
array with bone bright (as in every X-ray) plus a dict of technical fields. The format is
decided by the file's content, never by its name. Decisions worth knowing:

- **Supported formats** are JPEG, PNG and DICOM. GIF, TIFF, BMP, WebP, JPEG 2000, HEIC/AVIF and
  Photoshop files are recognised and refused as unsupported; anything else is "not an image".
- **Colour** becomes greyscale with the ITU-R 601 weights (the ones ``to_model_input`` uses).
  CMYK JPEGs go through RGB first. EXIF orientation is applied.
- **Transparency** is composited on black: around an X-ray, black is air, so transparent
  padding reads as background rather than as a bright frame.
- **16-bit PNGs** are stretched min-max over the data's own range (the darkest pixel becomes 0,
  the brightest 255). Detectors often store 10-14 bit values in a 16-bit container, which
  would look black if divided by 65535. 8-bit images are kept exactly as stored.
- **DICOM**: modality rescale, then the VOI LUT or window, then MONOCHROME1 is inverted so
  bone is bright, then min-max to 0-255. A multi-frame file shows its first frame and says
  so in ``info["note"]``. A compressed transfer syntax without an installed decoder is
  refused with its name.
- **Safety**: a file over :data:`MAX_BYTES` is refused before it is read; the dimensions in
  the header (Pillow's lazy ``Image.open``, DICOM Rows x Columns) are checked against
  :data:`MAX_PIXELS` before any pixel is decoded, so a decompression bomb is never expanded.
- **Memory**: with ``max_side``, a large JPEG is decoded reduced by libjpeg's DCT scaling
  (1/2, 1/4 or 1/8, Pillow's ``draft``) to the smallest size whose sides are still at least
  ``max_side``: a 49-megapixel JPEG then costs a few megabytes instead of ~200 MB of RGB and
  grey buffers. A PNG is decoded once in its own type (uint8, or uint16 for 16 bits) and
  then read in strips of about a quarter megapixel, each made grey in float32 and box-reduced, so no
  float or RGBA copy of the whole image exists (at most ~8 bytes per source pixel: a 16-bit
  RGBA PNG's own buffer); a DICOM frame is box-reduced in its stored type before the LUTs.
  ``info`` keeps the stored size and says so in ``note``.
- **Privacy**: only whitelisted technical DICOM fields reach ``info``; no patient field is
  copied, logged or put in an error message, and foreign errors are not chained.

This module reads the bytes and decides the format; :mod:`cxr_core.imaging.raster` decodes JPEG
and PNG, :mod:`cxr_core.imaging.dicom` DICOM, and :mod:`cxr_core.imaging.decoded` holds what they
share: :class:`~cxr_core.imaging.decoded.DecodedImage`, the limits and the refusal sentences.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from cxr_core.errors import InvalidImageError
from cxr_core.imaging.decoded import (
    EMPTY,
    MAX_BYTES,
    MISSING_FILE,
    NOT_A_FILE,
    NOT_AN_IMAGE,
    TOO_MANY_BYTES,
    UNSUPPORTED,
    DecodedImage,
)
from cxr_core.imaging.dicom import decode_dicom, parse_dicom, try_parse_dicom
from cxr_core.imaging.raster import decode_raster
from cxr_core.io import read_regular_bytes

__all__ = ["read_image"]

_SUPPORTED_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"))
_UNSUPPORTED_MAGIC = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xffO\xffQ", "JPEG 2000"),
    (b"8BPS", "Photoshop"),
)
_UNSUPPORTED_SUFFIXES = {
    ".gif": "GIF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WebP",
    ".jp2": "JPEG 2000",
    ".heic": "HEIC",
    ".avif": "AVIF",
}


def read_image(
    source: bytes | str | Path | BinaryIO,
    filename: str | None = None,
    max_side: int | None = None,
) -> DecodedImage:
    """Decode a JPEG, PNG or DICOM file into upright greyscale pixels.

    Args:
        source: The file's bytes, its path, or a binary file object (e.g. an upload).
        filename: The original file name, if known. It never chooses the decoder; it only
            words the error for content that is not recognised but is named like an
            unsupported image type (e.g. ``scan.heic``).
        max_side: If given, a JPEG larger than this is decoded at a reduced scale (1/2, 1/4
            or 1/8) whose sides stay at least ``max_side`` pixels; a PNG or DICOM is reduced
            by a whole factor (box means, in strips) whose longer side stays at least
            ``max_side``, before any float conversion of the whole image.

    Returns:
        A :class:`DecodedImage` whose ``pixels`` are ``(H, W)`` uint8 with bone bright.

    Raises:
        InvalidImageError: With one plain sentence: the file is empty, larger than 50 MiB,
            not a regular file (a FIFO or device),
            not an image, of an unsupported format, truncated or damaged, over 50
            megapixels, under 32 pixels on a side, or a DICOM without a usable image.
    """
    data = _read_bytes(source)
    if filename is None and isinstance(source, str | Path):
        filename = Path(source).name
    if not data:
        raise InvalidImageError(EMPTY)
    if len(data) > MAX_BYTES:
        raise InvalidImageError(TOO_MANY_BYTES)
    if data[128:132] == b"DICM":
        return decode_dicom(parse_dicom(data), max_side)
    for magic, name in _SUPPORTED_MAGIC:
        if data.startswith(magic):
            return decode_raster(data, name, max_side)
    unsupported = _unsupported_format(data)
    if unsupported:
        raise InvalidImageError(UNSUPPORTED.format(name=unsupported))
    dataset = try_parse_dicom(data)
    if dataset is not None:
        return decode_dicom(dataset, max_side)
    suffix = Path(filename).suffix.lower() if filename else ""
    if suffix in _UNSUPPORTED_SUFFIXES:
        raise InvalidImageError(UNSUPPORTED.format(name=_UNSUPPORTED_SUFFIXES[suffix]))
    raise InvalidImageError(NOT_AN_IMAGE)


def _read_bytes(source: bytes | str | Path | BinaryIO) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            info = os.stat(path)
        except OSError:
            raise InvalidImageError(MISSING_FILE) from None
        if not stat.S_ISREG(info.st_mode):
            # A FIFO would hang the read and /dev/zero would never end: refused unopened.
            raise InvalidImageError(NOT_A_FILE)
        if info.st_size > MAX_BYTES:
            raise InvalidImageError(TOO_MANY_BYTES)
        try:
            return read_regular_bytes(path, MAX_BYTES, InvalidImageError)
        except OSError:
            raise InvalidImageError(MISSING_FILE) from None
    if hasattr(source, "read"):
        # One byte past the limit is enough to know the file is too large.
        return bytes(source.read(MAX_BYTES + 1))
    raise TypeError(
        f"source must be bytes, a path or a binary file. Received: source={type(source)!r}"
    )


def _unsupported_format(data: bytes) -> str | None:
    for magic, name in _UNSUPPORTED_MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"avis"):
        return "HEIC/AVIF"
    dib_header_sizes = (12, 40, 52, 56, 64, 108, 124)
    if data[:2] == b"BM" and int.from_bytes(data[14:18], "little") in dib_header_sizes:
        return "BMP"
    return None

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
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi_lut,
    get_decoder,
    pixel_array,
)
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from cxr_core.errors import InvalidImageError
from cxr_core.imaging import patient_age
from cxr_core.imaging.strips import StripReader, reduce_factor, shrink, strip_grey
from cxr_core.io import read_regular_bytes

__all__ = ["MAX_BYTES", "MAX_PIXELS", "MIN_SIDE", "DecodedImage", "mean_chroma", "read_image"]

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
# Pillow's Image.transpose methods for EXIF orientations 2-8 (as in ImageOps.exif_transpose).
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# The only DICOM attributes ever read into info: technical, never about the patient.
_DICOM_FIELDS = {
    "modality": "Modality",
    "view_position": "ViewPosition",
    "photometric_interpretation": "PhotometricInterpretation",
}


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
        return _decode_dicom(_parse_dicom(data), max_side)
    for magic, name in _SUPPORTED_MAGIC:
        if data.startswith(magic):
            return _decode_raster(data, name, max_side)
    unsupported = _unsupported_format(data)
    if unsupported:
        raise InvalidImageError(UNSUPPORTED.format(name=unsupported))
    dataset = _try_parse_dicom(data)
    if dataset is not None:
        return _decode_dicom(dataset, max_side)
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


def _check_dimensions(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise InvalidImageError(TOO_MANY_PIXELS)
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(TOO_SMALL.format(width=width, height=height))


def _stretch(values: np.ndarray) -> np.ndarray:
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


def _to_grey(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` RGB -> float32 ``(H, W)`` with the ITU-R 601 weights."""
    values = np.asarray(values, dtype=np.float32)
    return values if values.ndim == 2 else values[..., :3] @ _LUMA.astype(np.float32)


# --- JPEG and PNG ---------------------------------------------------------------------------


def _open_raster(data: bytes, name: str) -> Image.Image:
    """Open lazily (header only) and check the dimensions before anything is decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[name])
        except Image.DecompressionBombError:
            raise InvalidImageError(TOO_MANY_PIXELS) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
            raise InvalidImageError(DAMAGED) from None
    _check_dimensions(*image.size)
    return image


def _decode_raster(data: bytes, name: str, max_side: int | None = None) -> DecodedImage:
    image = _open_raster(data, name)
    mode, stored_size = image.mode, image.size
    sixteen_bit = name == "PNG" and data[24] == 16  # IHDR bit depth, already validated
    if name == "JPEG" and max_side and max(image.size) > max_side:
        # libjpeg's DCT scaling: the reduced image is decoded directly, never the full one.
        image.draft(mode, (max_side, max_side))
    factor = 1 if name == "JPEG" else reduce_factor(stored_size, max_side)
    notes = []
    if sixteen_bit:
        values, colour = _png16_values(image, data, factor)
        grey = _stretch(values)
        notes.append("16-bit values stretched to 0-255 over the image's own range")
    else:
        _load(image)
        grey, colour = strip_grey(image.size, _pillow_strips(image), factor, 255.0, np.uint8)
        if _has_alpha(image):
            notes.append("transparent areas shown as black")
    decoded_width = image.size[0] // factor if factor > 1 else image.size[0]
    if decoded_width != stored_size[0]:
        scale = round(stored_size[0] / decoded_width)
        notes.append(f"decoded at 1/{scale} scale, {grey.shape[1]} x {grey.shape[0]} pixels")
    orientation = _orientation(image, decoded=not (sixteen_bit and not mode.startswith("I")))
    width, height = stored_size
    if orientation in _ORIENTATIONS:
        grey = np.asarray(Image.fromarray(grey).transpose(_ORIENTATIONS[orientation]))
        notes.append("EXIF orientation applied")
        if orientation >= 5:  # a quarter turn swaps the sides
            width, height = height, width
    info: dict[str, str | int | float] = {
        "format": name,
        "width": int(width),
        "height": int(height),
        "bit_depth": 16 if sixteen_bit else 8,
        "mode": mode,
        "colour": colour,
    }
    if notes:
        info["note"] = "; ".join(notes)
    return DecodedImage(np.ascontiguousarray(grey), info)


def _orientation(image: Image.Image, decoded: bool) -> int:
    """The EXIF orientation (1 when none), without decoding pixels: Pillow's ``getexif`` on
    an unloaded PNG decodes the whole image to look for an eXIf chunk after the data."""
    raw = image.info.get("exif")
    if raw is None and decoded:  # chunks after the pixel data are known once decoded
        return int(image.getexif().get(0x0112, 1) or 1)
    if not raw:
        return 1
    exif = Image.Exif()
    try:
        exif.load(raw)
        return int(exif.get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block only loses the orientation
        return 1


def _load(image: Image.Image) -> None:
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError):
        raise InvalidImageError(DAMAGED) from None


def _pillow_strips(image: Image.Image) -> StripReader:
    """Rows of an 8-bit image as RGB order arrays: grey ``(h, W)``, ``(h, W, 3)`` or RGBA."""
    if _has_alpha(image):
        target = "RGBA"
    elif image.mode == "L":
        target = "L"
    else:
        # CMYK, palette, 1-bit and the rest: through RGB, whose conversions Pillow defines.
        target = "RGB"
    width = image.size[0]

    def read(top: int, bottom: int) -> np.ndarray:
        strip = image.crop((0, top, width, bottom))
        return np.asarray(strip if strip.mode == target else strip.convert(target))

    return read


def _png16_values(image: Image.Image, data: bytes, factor: int) -> tuple[np.ndarray, float]:
    """16-bit PNG -> float32 ``(H / factor, W / factor)`` at full depth and its colourfulness.

    Pillow keeps 16 bits only for grey. For colour, OpenCV gives the ITU-R 601 grey at full
    depth (uint16, 2 bytes a pixel; its RGBA decode would cost 16), and Pillow's 8-bit
    decode gives the alpha to composite on black and the colourfulness: about 6 bytes per
    source pixel in all, never a float copy of the whole image.
    """
    if image.mode.startswith("I"):
        _load(image)
        values = np.asarray(image)
        return strip_grey(image.size, lambda top, bottom: values[top:bottom], factor, 65535.0)
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_GRAYSCALE
    grey = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if grey is None or grey.shape != (image.size[1], image.size[0]):
        raise InvalidImageError(DAMAGED)
    _load(image)  # Pillow's 8-bit copy: alpha and colour only
    width = image.size[0]

    def read(top: int, bottom: int) -> np.ndarray:
        rows = grey[top:bottom]
        if not _has_alpha(image):
            return rows
        alpha = np.asarray(image.crop((0, top, width, bottom)).convert("RGBA").getchannel("A"))
        return np.stack([rows, alpha.astype(np.uint16) * 257], axis=-1)  # grey + alpha

    values, _ = strip_grey(image.size, read, factor, 65535.0)
    small = image.reduce(max(1, max(image.size) // 256)) if image.mode in _REDUCIBLE else image
    return values, round(mean_chroma(np.asarray(small.convert("RGB"))), 4)


_REDUCIBLE = ("L", "LA", "RGB", "RGBA")


def mean_chroma(pixels: np.ndarray) -> float:
    """Mean chroma (max - min of R, G, B) of an ``(H, W, 3|4)`` array as a share of 255.

    Returns:
        A float in [0, 1]; 0 for a grey ``(H, W)`` or ``(H, W, 1)`` array.
    """
    array = np.asarray(pixels)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        return 0.0
    rgb = array[..., :3].astype(np.float32)
    return float((rgb.max(axis=-1) - rgb.min(axis=-1)).mean() / 255.0)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


# --- DICOM ----------------------------------------------------------------------------------


def _parse_dicom(data: bytes) -> pydicom.Dataset:
    """Read a dataset; pydicom's warnings are silenced because they can quote field values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception:  # noqa: BLE001 - any parser failure means a damaged file
            raise InvalidImageError(DAMAGED) from None


def _try_parse_dicom(data: bytes) -> pydicom.Dataset | None:
    """A DICOM without the ``DICM`` preamble: accepted only if it parses and has PixelData."""
    try:
        dataset = _parse_dicom(data)
    except InvalidImageError:
        return None
    try:
        return dataset if "PixelData" in dataset and "Rows" in dataset else None
    except Exception:  # noqa: BLE001 - lazily parsed junk can fail on access
        return None


def _transfer_syntax(dataset: pydicom.Dataset) -> UID:
    syntax = dataset.file_meta.get("TransferSyntaxUID") if dataset.file_meta else None
    if syntax is None:
        implicit, _ = dataset.original_encoding
        syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        dataset.file_meta.TransferSyntaxUID = syntax
    return UID(syntax)


def _decode_dicom(dataset: pydicom.Dataset, max_side: int | None = None) -> DecodedImage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "PixelData" not in dataset:
            raise InvalidImageError(NO_DICOM_PIXELS)
        try:
            rows, columns = int(dataset.Rows), int(dataset.Columns)
            frames = int(dataset.get("NumberOfFrames", 1) or 1)
        except (AttributeError, TypeError, ValueError):
            raise InvalidImageError(DAMAGED) from None
        _check_dimensions(columns, rows)
        syntax = _transfer_syntax(dataset)
        values = shrink(
            _dicom_first_frame(dataset, syntax), reduce_factor((columns, rows), max_side)
        )
        pixels = _stretch(_dicom_display_values(values, dataset))
    info = _dicom_info(dataset, pixels, syntax, frames)
    info["width"], info["height"] = columns, rows
    if pixels.shape != (rows, columns):
        note = f"decoded at 1/{round(columns / pixels.shape[1])} scale"
        info["note"] = "; ".join(filter(None, [str(info.get("note", "")), note]))
    return DecodedImage(pixels, info)


def _dicom_first_frame(dataset: pydicom.Dataset, syntax: UID) -> np.ndarray:
    try:
        available = get_decoder(syntax).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise InvalidImageError(DICOM_CODEC.format(syntax=_syntax_name(syntax)))
    try:
        # index=0 decodes only the first frame, so a many-frame file is not expanded whole.
        return pixel_array(dataset, index=0)
    except (NotImplementedError, RuntimeError):
        raise InvalidImageError(DICOM_CODEC.format(syntax=_syntax_name(syntax))) from None
    except Exception:  # noqa: BLE001 - pydicom raises many kinds for short or bad data
        raise InvalidImageError(DAMAGED) from None


def _syntax_name(syntax: UID) -> str:
    name = syntax.name if syntax.is_valid else "an unknown transfer syntax"
    return name if name != str(syntax) else f"transfer syntax {syntax}"


def _dicom_display_values(values: np.ndarray, dataset: pydicom.Dataset) -> np.ndarray:
    """Stored values -> display values with bone bright (before the 0-255 stretch)."""
    photometric = str(dataset.get("PhotometricInterpretation", "")).upper()
    try:
        if photometric == "PALETTE COLOR":
            return _to_grey(apply_color_lut(values, dataset))
        if values.ndim == 3:  # RGB or YBR (pydicom already converted YBR to RGB)
            return _to_grey(values)
        values = apply_modality_lut(values, dataset)
        values = apply_voi_lut(values, dataset, index=0)
    except Exception:  # noqa: BLE001 - malformed LUT or window elements
        raise InvalidImageError(DAMAGED) from None
    values = np.asarray(values, dtype=np.float32)
    # MONOCHROME1 stores bone dark; negating is an exact inversion under the min-max stretch.
    return -values if photometric == "MONOCHROME1" else values


def _dicom_info(
    dataset: pydicom.Dataset, pixels: np.ndarray, syntax: UID, frames: int
) -> dict[str, str | int]:
    info: dict[str, str | int] = {
        "format": "DICOM",
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
        "bit_depth": _int_field(dataset, "BitsStored"),
        "frames": frames,
        "transfer_syntax": _syntax_name(syntax),
    }
    for key, keyword in _DICOM_FIELDS.items():
        value = dataset.get(keyword)
        if value is not None and str(value).strip():
            info[key] = _clean(str(value))
    if frames > 1:
        info["note"] = f"multi-frame DICOM: showing frame 1 of {frames}"
    # Only the comparison with the training ages is kept: no age or date leaves this function.
    age = patient_age.age_in_years(
        dataset.get("PatientAge"), dataset.get("PatientBirthDate"), dataset.get("StudyDate")
    )
    if patient_age.outside_training_ages(age):
        info[patient_age.AGE_FIELD] = "outside the training ages (1-5 years)"
    return info


def _int_field(dataset: pydicom.Dataset, keyword: str) -> int:
    try:
        return int(dataset.get(keyword, 0) or 0)
    except (TypeError, ValueError):
        return 0


def _clean(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable())[:64].strip()

"""JPEG and PNG, read safely into grey pixels: header-checked, decoded reduced, in strips.

Colour becomes grey with the ITU-R 601 weights, transparency is composited on black, EXIF
orientation is applied, 16-bit PNGs are stretched over their own range, and a large image is
decoded reduced (libjpeg's DCT scaling, or box means in strips) so that no float or RGBA copy of
the whole image exists (see :mod:`cxr_core.imaging.decode` for the decisions and their reasons).
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from cxr_core.errors import InvalidImageError
from cxr_core.imaging.decoded import (
    DAMAGED,
    TOO_MANY_PIXELS,
    DecodedImage,
    check_dimensions,
    stretch,
)
from cxr_core.imaging.strips import StripReader, reduce_factor, strip_grey

__all__ = ["decode_raster", "mean_chroma"]

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
    check_dimensions(*image.size)
    return image


def decode_raster(data: bytes, name: str, max_side: int | None = None) -> DecodedImage:
    """Decode a JPEG or PNG (``name``) into upright grey pixels and its technical fields.

    Raises:
        InvalidImageError: The image is damaged, too large or too small.
    """
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
        grey = stretch(values)
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

"""DICOM, read safely into grey pixels: modality and VOI LUTs, bone bright, first frame only.

Only whitelisted technical fields reach ``info``; no patient field is copied, logged or put in an
error message, and pydicom's warnings (which can quote field values) are silenced. A compressed
transfer syntax without an installed decoder is refused with its name.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom
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
from cxr_core.imaging.decoded import (
    DAMAGED,
    DICOM_CODEC,
    NO_DICOM_PIXELS,
    DecodedImage,
    check_dimensions,
    stretch,
    to_grey,
)
from cxr_core.imaging.strips import reduce_factor, shrink

__all__ = ["decode_dicom", "parse_dicom", "try_parse_dicom"]

# The only DICOM attributes ever read into info: technical, never about the patient.
_DICOM_FIELDS = {
    "modality": "Modality",
    "view_position": "ViewPosition",
    "photometric_interpretation": "PhotometricInterpretation",
}


def parse_dicom(data: bytes) -> pydicom.Dataset:
    """Read a dataset; pydicom's warnings are silenced because they can quote field values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception:  # noqa: BLE001 - any parser failure means a damaged file
            raise InvalidImageError(DAMAGED) from None


def try_parse_dicom(data: bytes) -> pydicom.Dataset | None:
    """A DICOM without the ``DICM`` preamble: accepted only if it parses and has PixelData."""
    try:
        dataset = parse_dicom(data)
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


def decode_dicom(dataset: pydicom.Dataset, max_side: int | None = None) -> DecodedImage:
    """Decode a parsed DICOM's first frame into grey pixels, bone bright, and its technical
    fields (whitelisted; only a comparison with the training ages, never the age itself).

    Raises:
        InvalidImageError: No image, an undecodable transfer syntax, damage, or a size out of
            bounds.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "PixelData" not in dataset:
            raise InvalidImageError(NO_DICOM_PIXELS)
        try:
            rows, columns = int(dataset.Rows), int(dataset.Columns)
            frames = int(dataset.get("NumberOfFrames", 1) or 1)
        except (AttributeError, TypeError, ValueError):
            raise InvalidImageError(DAMAGED) from None
        check_dimensions(columns, rows)
        syntax = _transfer_syntax(dataset)
        values = shrink(
            _dicom_first_frame(dataset, syntax), reduce_factor((columns, rows), max_side)
        )
        pixels = stretch(_dicom_display_values(values, dataset))
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
            return to_grey(apply_color_lut(values, dataset))
        if values.ndim == 3:  # RGB or YBR (pydicom already converted YBR to RGB)
            return to_grey(values)
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

"""Tests for cxr_core.imaging.decode: every supported format, every refusal, and patient privacy."""

from __future__ import annotations

import io
import struct
import traceback
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from PIL import Image, ImageOps
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, generate_uid

from cxr_core.errors import InvalidImageError
from cxr_core.imaging import decoded as refusals
from cxr_core.imaging.decode import read_image
from cxr_core.imaging.decoded import MAX_BYTES, DecodedImage

VAL_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "chest_xray" / "val"
PATIENT_FIELDS = {
    "PatientName": "Doe^Janet",
    "PatientID": "PID-98765",
    "PatientBirthDate": "19800101",
    "PatientSex": "F",
    "PatientAddress": "12 Elm Street",
}
HEIGHT, WIDTH = 64, 96  # not square, so a wrong rotation changes the shape


# --- builders -------------------------------------------------------------------------------


def quadrant_pattern(bright: int = 255, dark: int = 0) -> np.ndarray:
    """``(64, 96)`` uint16 image whose top-left quadrant is ``bright`` and the rest ``dark``."""
    pattern = np.full((HEIGHT, WIDTH), dark, dtype=np.uint16)
    pattern[: HEIGHT // 2, : WIDTH // 2] = bright
    return pattern


def assert_top_left_bright(decoded: DecodedImage) -> None:
    pixels = decoded.pixels
    assert pixels.shape == (HEIGHT, WIDTH)
    assert pixels.dtype == np.uint8
    h, w = HEIGHT // 2, WIDTH // 2
    inner = pixels[2 : h - 2, 2 : w - 2]  # margins leave JPEG ringing at the edges out
    top_right, bottom_left = pixels[2 : h - 2, w + 2 : -2], pixels[h + 2 : -2, 2 : w - 2]
    others = [top_right, bottom_left, pixels[h + 2 :, w + 2 :]]
    assert inner.mean() > 200
    assert all(region.mean() < 40 for region in others)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def grey_image(values: np.ndarray) -> Image.Image:
    return Image.fromarray(values.astype(np.uint8))


def dicom_bytes(
    frames: np.ndarray,
    photometric: str = "MONOCHROME2",
    preamble: bool = True,
    **elements: object,
) -> bytes:
    """A DICOM file with 12-bit stored pixels ``frames`` ``(n, H, W)`` or ``(H, W)``."""
    frames = np.asarray(frames, dtype=np.uint16)
    ds = Dataset()
    for keyword, value in PATIENT_FIELDS.items():
        setattr(ds, keyword, value)
    ds.Modality, ds.ViewPosition = "DX", "PA"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = frames.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if frames.ndim == 3:
        ds.NumberOfFrames = frames.shape[0]
    ds.PixelData = frames.tobytes()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    if preamble:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(buffer, enforce_file_format=True)
    else:
        ds.save_as(buffer, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but whose pixel data is a few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


# --- formats that decode --------------------------------------------------------------------


def test_greyscale_jpeg_decodes_upright():
    decoded = read_image(encode(grey_image(quadrant_pattern()), "JPEG", quality=95))
    assert_top_left_bright(decoded)
    assert decoded.info["format"] == "JPEG"
    assert (decoded.info["width"], decoded.info["height"]) == (WIDTH, HEIGHT)


def test_rgb_png_becomes_greyscale():
    rgb = np.repeat(quadrant_pattern()[..., None], 3, axis=-1).astype(np.uint8)
    decoded = read_image(encode(Image.fromarray(rgb), "PNG"))
    assert_top_left_bright(decoded)
    assert decoded.info["mode"] == "RGB"


def test_cmyk_jpeg_decodes_with_bright_kept_bright():
    rgb = Image.fromarray(np.repeat(quadrant_pattern()[..., None], 3, axis=-1).astype(np.uint8))
    decoded = read_image(encode(rgb.convert("CMYK"), "JPEG", quality=95))
    assert_top_left_bright(decoded)
    assert decoded.info["mode"] == "CMYK"


def test_exif_rotated_jpeg_is_turned_upright():
    # Orientation 6 means "rotate 90 degrees clockwise to display": store the image turned the
    # other way, with its sides swapped.
    stored = grey_image(np.rot90(quadrant_pattern(), k=1))
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = read_image(encode(stored, "JPEG", quality=95, exif=exif))
    assert_top_left_bright(decoded)
    assert "EXIF orientation applied" in decoded.info["note"]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(orientation):
    rng = np.random.default_rng(orientation)
    stored = grey_image(rng.integers(0, 256, (40, 56)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, "PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("L"))
    np.testing.assert_array_equal(read_image(data).pixels, expected)


def test_16bit_png_using_12_bits_is_stretched_not_black():
    decoded = read_image(encode(Image.fromarray(quadrant_pattern(bright=4095)), "PNG"))
    assert_top_left_bright(decoded)
    assert decoded.pixels.max() == 255
    assert decoded.info["bit_depth"] == 16


def test_16bit_png_stretch_is_linear_over_the_data_range():
    values = quadrant_pattern(bright=3000, dark=1000)
    values[HEIGHT // 2 :, WIDTH // 2 :] = 2000
    pixels = read_image(encode(Image.fromarray(values), "PNG")).pixels
    assert pixels[0, 0] == 255
    assert pixels[0, -1] == 0
    assert pixels[-1, -1] in (127, 128)


def test_16bit_rgb_png_keeps_full_depth():
    rgb = np.repeat(quadrant_pattern(bright=1000, dark=200)[..., None], 3, axis=-1)
    ok, data = cv2.imencode(".png", rgb)
    assert ok
    decoded = read_image(data.tobytes())
    assert_top_left_bright(decoded)
    assert decoded.info["bit_depth"] == 16


def test_rgba_png_composites_transparency_on_black():
    rgba = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    rgba[..., :3] = 255  # everything white ...
    rgba[: HEIGHT // 2, : WIDTH // 2, 3] = 255  # ... but only the top-left quadrant opaque
    decoded = read_image(encode(Image.fromarray(rgba), "PNG"))
    assert_top_left_bright(decoded)
    assert "transparent areas shown as black" in decoded.info["note"]


def test_palette_png_decodes():
    palette_image = grey_image(quadrant_pattern()).convert("P")
    assert palette_image.mode == "P"
    decoded = read_image(encode(palette_image, "PNG"))
    assert_top_left_bright(decoded)
    assert decoded.info["mode"] == "P"


def test_file_object_and_path_give_the_same_pixels(tmp_path):
    data = encode(grey_image(quadrant_pattern()), "PNG")
    path = tmp_path / "scan.png"
    path.write_bytes(data)
    from_path = read_image(path)
    np.testing.assert_array_equal(from_path.pixels, read_image(io.BytesIO(data)).pixels)
    np.testing.assert_array_equal(from_path.pixels, read_image(str(path)).pixels)


def test_format_is_chosen_by_content_not_by_file_name(tmp_path):
    path = tmp_path / "scan.dcm"
    path.write_bytes(encode(grey_image(quadrant_pattern()), "PNG"))
    assert read_image(path).info["format"] == "PNG"
    assert read_image(dicom_bytes(quadrant_pattern(4000)), "x.png").info["format"] == "DICOM"


# --- DICOM ----------------------------------------------------------------------------------


def test_dicom_monochrome2_keeps_high_values_bright():
    decoded = read_image(dicom_bytes(quadrant_pattern(bright=4000, dark=100)))
    assert_top_left_bright(decoded)
    assert decoded.info["photometric_interpretation"] == "MONOCHROME2"
    assert decoded.info["bit_depth"] == 12


def test_dicom_monochrome1_is_inverted_so_bone_is_bright():
    stored = quadrant_pattern(bright=100, dark=4000)  # MONOCHROME1: low values display bright
    decoded = read_image(dicom_bytes(stored, photometric="MONOCHROME1"))
    assert_top_left_bright(decoded)


def test_dicom_without_preamble_is_recognised_by_content():
    data = dicom_bytes(quadrant_pattern(bright=4000), preamble=False)
    assert data[128:132] != b"DICM"
    assert_top_left_bright(read_image(data))


def test_dicom_applies_rescale_then_window():
    stored = np.zeros((HEIGHT, WIDTH), dtype=np.uint16) + 500  # -> 0 after rescale
    stored[: HEIGHT // 2, : WIDTH // 2] = 2000  # -> 3000, above the window
    stored[: HEIGHT // 2, WIDTH // 2 :] = 1100  # -> 1200, a fifth of the way up the window
    data = dicom_bytes(
        stored, RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=1500, WindowWidth=1000
    )
    pixels = read_image(data).pixels
    assert pixels[0, 0] == 255
    assert pixels[-1, -1] == 0
    # Windowed after the rescale: 0.2 * 255 = 51. Without the rescale it would be about 25,
    # without the window about 102.
    assert 45 <= pixels[0, -1] <= 57


def test_multiframe_dicom_shows_first_frame_and_says_so():
    first = quadrant_pattern(bright=4000)
    frames = np.stack([first, 4000 - first, 4000 - first])
    decoded = read_image(dicom_bytes(frames))
    assert_top_left_bright(decoded)
    assert decoded.info["frames"] == 3
    assert decoded.info["note"] == "multi-frame DICOM: showing frame 1 of 3"


def test_dicom_technical_fields_are_exposed():
    info = read_image(dicom_bytes(quadrant_pattern(4000))).info
    assert info["modality"] == "DX"
    assert info["view_position"] == "PA"
    assert info["format"] == "DICOM"
    assert (info["width"], info["height"]) == (WIDTH, HEIGHT)


@pytest.mark.skipif(
    get_decoder(JPEGLSLossless).is_available, reason="a JPEG-LS decoder is installed here"
)
def test_compressed_dicom_without_decoder_names_the_transfer_syntax():
    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(quadrant_pattern(4000))))
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with pytest.raises(InvalidImageError) as caught:
        read_image(buffer.getvalue())
    assert str(caught.value) == refusals.DICOM_CODEC.format(
        syntax="JPEG-LS Lossless Image Compression"
    )


def test_dicom_without_pixel_data_is_refused():
    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(quadrant_pattern(4000))))
    del ds.PixelData
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with pytest.raises(InvalidImageError, match="contains no image"):
        read_image(buffer.getvalue())


# --- privacy --------------------------------------------------------------------------------


def _assert_no_patient_data(text: str) -> None:
    for value in PATIENT_FIELDS.values():
        if len(value) > 1:
            assert value not in text
    assert "Doe" not in text and "Janet" not in text


def test_dicom_patient_fields_never_reach_the_result(caplog, recwarn):
    data = dicom_bytes(quadrant_pattern(bright=4000))
    assert b"Doe^Janet" in data  # the file really carries a patient name
    decoded = read_image(data)
    _assert_no_patient_data(repr(decoded) + str(decoded.info) + repr(decoded.info))
    _assert_no_patient_data(caplog.text + " ".join(str(w.message) for w in recwarn))
    assert set(decoded.info) <= {
        "format",
        "width",
        "height",
        "bit_depth",
        "photometric_interpretation",
        "modality",
        "view_position",
        "frames",
        "transfer_syntax",
        "note",
    }


def test_dicom_patient_fields_never_reach_an_error_or_its_traceback(caplog):
    data = dicom_bytes(quadrant_pattern(bright=4000))
    truncated = data[: len(data) - 2000]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(InvalidImageError) as caught:
            read_image(truncated)
    assert str(caught.value) == refusals.DAMAGED
    text = "".join(traceback.format_exception(caught.value))
    _assert_no_patient_data(text + caplog.text + " ".join(str(w.message) for w in seen))


# --- refusals -------------------------------------------------------------------------------


def _truncated(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    data = encode(grey_image(rng.integers(0, 256, (128, 128))), fmt)
    return data[: len(data) // 2]


BAD_INPUTS = {
    "empty": (lambda: b"", refusals.EMPTY),
    "text": (lambda: b"patient notes, definitely not pixels\n" * 20, refusals.NOT_AN_IMAGE),
    "random bytes": (
        lambda: np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes(),
        refusals.NOT_AN_IMAGE,
    ),
    "truncated jpeg": (lambda: _truncated("JPEG"), refusals.DAMAGED),
    "truncated png": (lambda: _truncated("PNG"), refusals.DAMAGED),
    "png over 50 megapixels": (lambda: png_header_only(10_000, 6_000), refusals.TOO_MANY_PIXELS),
    "png over Pillow's own bomb limit": (
        lambda: png_header_only(20_000, 20_000),
        refusals.TOO_MANY_PIXELS,
    ),
    "dicom over 50 megapixels": (
        lambda: dicom_bytes(np.zeros((40, 40)), Rows=8000, Columns=8000),
        refusals.TOO_MANY_PIXELS,
    ),
    "too small": (
        lambda: encode(grey_image(np.zeros((20, 100))), "PNG"),
        refusals.TOO_SMALL.format(width=100, height=20),
    ),
    "gif": (
        lambda: encode(grey_image(np.zeros((40, 40))), "GIF"),
        refusals.UNSUPPORTED.format(name="GIF"),
    ),
    "tiff": (
        lambda: encode(grey_image(np.zeros((40, 40))), "TIFF"),
        refusals.UNSUPPORTED.format(name="TIFF"),
    ),
    "bmp": (
        lambda: encode(grey_image(np.zeros((40, 40))), "BMP"),
        refusals.UNSUPPORTED.format(name="BMP"),
    ),
    "webp": (
        lambda: encode(grey_image(np.zeros((40, 40))), "WEBP"),
        refusals.UNSUPPORTED.format(name="WebP"),
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_its_own_message(case):
    make, message = BAD_INPUTS[case]
    with pytest.raises(InvalidImageError) as caught:
        read_image(make())
    assert str(caught.value) == message


def test_refusal_messages_are_distinct_single_sentences():
    messages = [
        refusals.EMPTY,
        refusals.NOT_AN_IMAGE,
        refusals.DAMAGED,
        refusals.TOO_MANY_PIXELS,
        refusals.TOO_MANY_BYTES,
        refusals.TOO_SMALL.format(width=10, height=10),
        refusals.UNSUPPORTED.format(name="GIF"),
        refusals.NO_DICOM_PIXELS,
        refusals.DICOM_CODEC.format(syntax="RLE Lossless"),
        refusals.MISSING_FILE,
    ]
    assert len(set(messages)) == len(messages)
    for message in messages:
        assert message.endswith(".") and message.count(". ") == 0 and "\n" not in message


def test_file_over_50_mb_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    with path.open("wb") as stream:
        stream.truncate(MAX_BYTES + 1)  # sparse: costs no disk

    def refuse_to_read(self):
        raise AssertionError("the file was read")

    monkeypatch.setattr(Path, "read_bytes", refuse_to_read)
    with pytest.raises(InvalidImageError) as caught:
        read_image(path)
    assert str(caught.value) == refusals.TOO_MANY_BYTES


def test_bytes_over_50_mb_are_refused():
    with pytest.raises(InvalidImageError) as caught:
        read_image(b"\x89PNG\r\n\x1a\n" + bytes(MAX_BYTES))
    assert str(caught.value) == refusals.TOO_MANY_BYTES


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(InvalidImageError) as caught:
        read_image(tmp_path / "nowhere.jpeg")
    assert str(caught.value) == refusals.MISSING_FILE


def test_unrecognised_content_named_like_unsupported_type_says_unsupported():
    with pytest.raises(InvalidImageError) as caught:
        read_image(b"\x00\x01 not a known signature" * 10, filename="scan.HEIC")
    assert str(caught.value) == refusals.UNSUPPORTED.format(name="HEIC")


# --- real X-rays ----------------------------------------------------------------------------


def test_shared_val_xrays_decode_at_full_resolution():
    files = sorted(VAL_DIR.glob("*/*.jpeg"))
    if not files:
        pytest.skip(f"shared val images not found under {VAL_DIR}")
    for path in files:
        decoded = read_image(path)
        with Image.open(path) as reference:
            width, height = reference.size
        assert decoded.pixels.shape == (height, width)
        assert decoded.pixels.dtype == np.uint8
        assert decoded.pixels.std() > 10  # real anatomy, not a flat frame

"""A one-page PNG report of one model output: the X-ray, its heatmap, the verdict and a disclaimer.

The report is what a user downloads from the app's Diagnose page. It states the probability and
the threshold beside every verdict, names the model and the time, and carries the research-demo
disclaimer, so the picture cannot travel without them. It holds no patient field: only the
file name the user gave.
"""

from __future__ import annotations

import io
import textwrap
from datetime import UTC, datetime

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cxr_core.errors import ConfigError, InvalidImageError
from cxr_core.explain.heatmap import DEFAULT_OPACITY
from cxr_core.explain.verdict import decision_words, heat_legend, score_scale, score_texts

__all__ = ["DISCLAIMER", "render_report", "report_filename"]

#: Printed on every report (and shown by the app beside every verdict).
DISCLAIMER = "Research demo - not a diagnostic device. Not for clinical use."

_MARGIN = 32
_HEADER = 72
_INK = (27, 42, 53)
_MUTED = (90, 104, 115)
_ACCENT = (31, 111, 139)
_WARN_BG = (253, 236, 206)
_WARN_INK = (122, 62, 0)
_VERDICT_COLOURS = {"NORMAL": (26, 122, 60), "PNEUMONIA": (176, 42, 42), "UNCERTAIN": _MUTED}
#: The sentence under an UNCERTAIN verdict.
UNCERTAIN_LINE = "Both classes plausible at 95% confidence: a clinician should read this film."
_MAX_NAME = 70
_BAR = 18  # height of the legend's colour bar
_LEGEND = _BAR + 76  # the numbered bar and a caption
_SCALE = 120  # the score-against-threshold scale


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow's bundled scalable font needs FreeType; without it the bitmap font is readable too.
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):
        return ImageFont.load_default()


def _fitted_size(shape: tuple[int, ...], side: int) -> tuple[int, int]:
    """``(width, height)`` of an image of ``shape`` scaled, up or down, to ``side`` on its
    longer side."""
    height, width = shape[:2]
    scale = side / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _panel(image: np.ndarray, side: int, height: int) -> Image.Image:
    """An ``(H, W)`` or ``(H, W, 3)`` uint8 array scaled (a 224-px upload upscaled) to ``side``
    on its longer side, centred on a white ``side`` x ``height`` panel."""
    size = _fitted_size(image.shape, side)
    # Bicubic: smooth when enlarging a small upload, sharp enough when shrinking a large one.
    picture = Image.fromarray(image).convert("RGB").resize(size, Image.Resampling.BICUBIC)
    panel = Image.new("RGB", (side, height), (255, 255, 255))
    panel.paste(picture, ((side - picture.width) // 2, (height - picture.height) // 2))
    return panel


def _draw_legend(
    canvas: Image.Image, left: int, top: int, width: int, opacity: float, explained: str
) -> None:
    """The heatmap's colour bar (as the overlay paints it) with its labels, ``_LEGEND`` high."""
    legend = Image.fromarray(heat_legend(width, alpha=opacity))
    canvas.paste(legend.resize((width, min(legend.height, _LEGEND - 22))), (left, top))
    caption = f"What moved the {_short(explained)} score, not where disease is"
    ImageDraw.Draw(canvas).text((left, top + _LEGEND - 20), caption, fill=_MUTED, font=_font(14))


def _check_array(name: str, value: np.ndarray, channels: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value)
    ok_shape = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in channels)
    if array.dtype != np.uint8 or not ok_shape or min(array.shape[:2]) < 1:
        raise InvalidImageError(f"The {name} for the report must be a uint8 image array.")
    return array


def _check_unit(name: str, value: float) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1]. Received: {name}={value!r}")
    return number


def _short(text: str, limit: int = _MAX_NAME) -> str:
    text = "".join(ch for ch in str(text) if ch.isprintable())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text_lines(
    label: str, probability: float, threshold: float, details: list[tuple[str, str]]
) -> list[tuple[str, tuple[int, int, int], int]]:
    """(text, colour, font size) for each line under the images."""
    shown_p, shown_t = score_texts(probability, threshold)
    relation = decision_words(probability, threshold)
    lines = [
        (f"Model output: {label}", _VERDICT_COLOURS.get(label, _INK), 30),
        (f"Probability of pneumonia {shown_p}, {relation} the threshold {shown_t}", _INK, 22),
    ]
    if label == "UNCERTAIN":
        lines.insert(1, (UNCERTAIN_LINE, _INK, 20))
    for key, value in details:
        if key == "Warning":  # wrapped, in the warning's colour: it is read, not skimmed
            text = "".join(ch for ch in str(value) if ch.isprintable())[:300]
            lines += [(line, _WARN_INK, 18) for line in textwrap.wrap(f"Warning: {text}", 100)]
        else:
            lines.append((f"{key}: {_short(value)}", _MUTED, 18))
    return lines


def render_report(
    pixels: np.ndarray,
    overlay_rgb: np.ndarray,
    *,
    filename: str,
    label: str,
    probability: float,
    threshold: float,
    model_name: str,
    method: str = "Grad-CAM",
    opacity: float = DEFAULT_OPACITY,
    created: datetime | None = None,
    panel_size: int = 512,
    note: str = "",
) -> bytes:
    """Draw the report of one prediction as a PNG.

    Layout, top to bottom: a title band; the original X-ray and the heatmap overlay side by
    side, each scaled (a small upload enlarged) to ``panel_size`` on its longer side; the
    heatmap's legend under the overlay; the verdict in colour; the probability and the
    threshold; file, model, explanation method and time; the disclaimer in a shaded band.

    Args:
        pixels: ``(H, W)`` uint8 greyscale X-ray (or ``(H, W, 3)`` RGB).
        overlay_rgb: ``(H, W, 3)`` uint8 RGB heatmap overlay (``heatmap.overlay``).
        filename: The uploaded file's name (shortened to 70 characters).
        label: The model's verdict, e.g. ``"PNEUMONIA"``; its first word names the class the
            heatmap explains.
        probability: Probability of PNEUMONIA, in [0, 1].
        threshold: The model's decision threshold, in [0, 1].
        model_name: How the model is named in the app.
        method: Name of the explanation method.
        opacity: The overlay's maximum opacity, in [0, 1], drawn into the legend.
        created: Time of the report; now (UTC) if not given.
        panel_size: Side of each image panel in pixels, 128 to 1024.
        note: A warning printed under the verdict (e.g. that the X-ray is unlike the
            training images), or empty.

    Returns:
        The PNG file's bytes: an RGB image ``2 * panel_size + 3 * 32`` pixels wide.

    Raises:
        InvalidImageError: ``pixels`` or ``overlay_rgb`` is not a uint8 image array.
        ConfigError: ``probability``, ``threshold``, ``opacity`` or ``panel_size`` is out of
            range.
    """
    pixels = _check_array("X-ray", pixels, (3,))
    overlay_rgb = _check_array("overlay", overlay_rgb, (3,))
    probability = _check_unit("probability", probability)
    threshold = _check_unit("threshold", threshold)
    opacity = _check_unit("opacity", opacity)
    if not isinstance(panel_size, int) or not 128 <= panel_size <= 1024:
        raise ConfigError(
            f"panel_size must be an integer from 128 to 1024. Received: panel_size={panel_size!r}"
        )
    when = (created or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M %Z").strip()
    details = [("File", filename), ("Model", model_name), ("Explanation", method)]
    if note:
        details.insert(0, ("Warning", note))
    lines = _text_lines(label, probability, threshold, details + [("Created", when)])
    panel_height = max(_fitted_size(image.shape, panel_size)[1] for image in (pixels, overlay_rgb))
    width = 2 * panel_size + 3 * _MARGIN
    text_height = sum(size + 12 for _, _, size in lines)
    top = _HEADER + _MARGIN
    legend_top = top + panel_height + 36
    y = legend_top + _LEGEND + 16
    height = y + text_height + _SCALE + _MARGIN + 64
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, width, _HEADER), fill=_ACCENT)
    draw.text(
        (_MARGIN, 20), "CXR Pneumonia Lab - model output", fill=(255, 255, 255), font=_font(30)
    )
    captions = ("Original", f"{method} overlay (max opacity {opacity:.2f})")
    for index, (image, caption) in enumerate(zip((pixels, overlay_rgb), captions, strict=True)):
        left = _MARGIN + index * (panel_size + _MARGIN)
        canvas.paste(_panel(image, panel_size, panel_height), (left, top))
        draw.text((left, top + panel_height + 8), caption, fill=_MUTED, font=_font(18))
    explained = str(label).split(" (")[0]
    if explained == "UNCERTAIN":  # the heatmap explains the threshold's verdict
        explained = "PNEUMONIA" if probability >= threshold else "NORMAL"
    _draw_legend(canvas, 2 * _MARGIN + panel_size, legend_top, panel_size, opacity, explained)
    for text, colour, size in lines[:2]:
        draw.text((_MARGIN, y), text, fill=colour, font=_font(size))
        y += size + 12
    scale = score_scale(probability, threshold, width=min(720, width - 2 * _MARGIN))
    canvas.paste(Image.fromarray(scale[:_SCALE]), (_MARGIN, y))
    y += _SCALE
    for text, colour, size in lines[2:]:
        draw.text((_MARGIN, y), text, fill=colour, font=_font(size))
        y += size + 12
    draw.rectangle((0, height - 64, width, height), fill=_WARN_BG)
    draw.text((_MARGIN, height - 46), DISCLAIMER, fill=_WARN_INK, font=_font(22))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def report_filename(filename: str) -> str:
    """Name of the report file for an uploaded file: ``chest.dcm`` -> ``chest_report.png``."""
    stem = str(filename).rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem.lstrip(".") else stem
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem).strip("._")
    return f"{safe or 'xray'}_report.png"

"""How a verdict is shown: the score against the threshold, in words, numbers and a scale.

"Probability of pneumonia 0.82" beside a green NORMAL reads backwards until one sees that the
threshold is 0.871; "0.513, below the threshold 0.513" reads as a contradiction. Here the score
and the threshold are printed with as many decimals as it takes to tell them apart
(:func:`score_texts`), and :func:`score_scale` draws where the score sits on [0, 1] beside the
threshold, for the Diagnose page and the PNG report alike. Heatmap wording shared by both lives
here too (:data:`HEATMAP_CAVEAT`, :func:`blank_map_note`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cxr_core.errors import ConfigError

__all__ = [
    "HEATMAP_CAVEAT",
    "blank_map_note",
    "decision_words",
    "heat_legend",
    "score_scale",
    "score_texts",
]

#: Said beside every heatmap (Saporta et al. 2022 and Arun et al. 2021 found Grad-CAM the best
#: saliency method on chest X-rays and still well below radiologists at localising disease).
HEATMAP_CAVEAT = (
    "The heatmap shows which regions moved the model's score, not where the disease is: "
    "published comparisons find such maps well below radiologists at localising findings."
)

_MIN_DECIMALS, _MAX_DECIMALS = 3, 12
_NORMAL_SIDE, _PNEUMONIA_SIDE = (214, 236, 221), (245, 214, 214)
_INK, _MUTED = (27, 42, 53), (90, 104, 115)


def score_texts(probability: float, threshold: float) -> tuple[str, str]:
    """The score and the threshold as text, never equal unless they are equal.

    Uses three decimals, or more (up to twelve, then 17 significant digits) until the two
    differ and a score short of 0 or 1 no longer prints as 0 or 1. Rounding keeps order, so
    the printed score is at or above the printed threshold exactly when the score is.

    Returns:
        ``(probability text, threshold text)``, e.g. ``("0.5129", "0.5130")``.
    """
    p, t = float(probability), float(threshold)
    for decimals in range(_MIN_DECIMALS, _MAX_DECIMALS + 1):
        shown = f"{p:.{decimals}f}", f"{t:.{decimals}f}"
        # 0.99996 is not "1.000": a score never prints as certain unless it is.
        certain = p not in (0.0, 1.0) and float(shown[0]) in (0.0, 1.0)
        if (p == t or shown[0] != shown[1]) and not certain:
            return shown
    return f"{p:.17g}", f"{t:.17g}"


def decision_words(probability: float, threshold: float) -> str:
    """``"at or above"`` when the score reaches the threshold (PNEUMONIA), else ``"below"``."""
    return "at or above" if float(probability) >= float(threshold) else "below"


def blank_map_note(heatmap: np.ndarray | None) -> str | None:
    """A sentence explaining an empty heatmap, or None when the map shows something."""
    if heatmap is None or float(np.max(heatmap, initial=0.0)) > 0:
        return None
    return (
        "The heatmap is blank: no region of the explained layer pushed the score towards this "
        "output (its gradient was flat or pointed the other way everywhere). This happens with "
        "small models and with scores near 0 or 1; it says nothing about the image."
    )


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size)


def score_scale(
    probability: float, threshold: float, width: int = 480, class_names=("NORMAL", "PNEUMONIA")
) -> np.ndarray:
    """Draw the score on a 0-1 scale split at the threshold.

    The part below the threshold is tinted green and named ``class_names[0]``, the part at or
    above it red and named ``class_names[1]``; a tick marks the threshold, a triangle and its
    number the score, and 0, 0.5 and 1 are numbered.

    Args:
        probability: Probability of PNEUMONIA, in [0, 1].
        threshold: The decision threshold, in [0, 1].
        width: Image width in pixels, 200 to 2000 (the height follows: ``width // 6``).
        class_names: Names of the two sides.

    Returns:
        ``(height, width, 3)`` uint8 RGB array on white.

    Raises:
        ConfigError: A value is out of range.
    """
    p, t = float(probability), float(threshold)
    if not (0.0 <= p <= 1.0 and 0.0 <= t <= 1.0):
        raise ConfigError(f"probability and threshold must be in [0, 1]. Received: {p!r}, {t!r}")
    if not (isinstance(width, int) and 200 <= width <= 2000):
        raise ConfigError(f"width must be an integer from 200 to 2000. Received: width={width!r}")
    height, pad = max(72, width // 6), width // 24
    font = _font(max(11, width // 36))
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    left, right = pad, width - pad
    top, bottom = height // 3, height // 3 + height // 5

    def x_of(value: float) -> int:
        return round(left + value * (right - left))

    draw.rectangle((left, top, x_of(t), bottom), fill=_NORMAL_SIDE)
    draw.rectangle((x_of(t), top, right, bottom), fill=_PNEUMONIA_SIDE)
    draw.rectangle((left, top, right, bottom), outline=_MUTED)
    middle = (top + bottom) // 2
    for name, start, end in ((class_names[0], left, x_of(t)), (class_names[1], x_of(t), right)):
        # Each side named in its middle where the name fits; the page's sentence says it too.
        if draw.textlength(name, font=font) + 8 <= end - start:
            draw.text(((start + end) // 2, middle), name, fill=_MUTED, font=font, anchor="mm")
    shown_p, shown_t = score_texts(p, t)
    draw.line((x_of(t), top - 6, x_of(t), bottom + 6), fill=_INK, width=2)
    for value, text in ((0.0, "0"), (0.5, "0.5"), (1.0, "1")):
        draw.text((x_of(value), bottom + 4), text, fill=_MUTED, font=font, anchor="ma")
    draw.text((x_of(t), height - 2), f"threshold {shown_t}", fill=_INK, font=font, anchor="md")
    marker = x_of(p)
    size = max(5, width // 80)
    draw.polygon([(marker - size, top - 2 * size), (marker + size, top - 2 * size), (marker, top)],
                 fill=_INK)  # fmt: skip
    anchor = "ld" if p < 0.15 else "rd" if p > 0.85 else "md"
    draw.text((marker, top - 2 * size - 2), f"score {shown_p}", fill=_INK, font=font,
              anchor=anchor)  # fmt: skip
    return np.asarray(image)


def heat_legend(width: int = 480, alpha: float = 0.6) -> np.ndarray:
    """The heatmap's colour bar (:func:`cxr_core.explain.heatmap.colour_bar`) with numbered ticks.

    The numbers are each region's heat as a share of the image's strongest (0 to 1): a map is
    scaled per image, so they compare regions of one image, never two images.

    Returns:
        ``(height, width, 3)`` uint8 RGB array on white.

    Raises:
        ConfigError: ``width`` is not 200 to 2000, or ``alpha`` is not in [0, 1].
    """
    from cxr_core.explain.heatmap import colour_bar

    if not (isinstance(width, int) and 200 <= width <= 2000):
        raise ConfigError(f"width must be an integer from 200 to 2000. Received: width={width!r}")
    pad, bar_height = width // 24, max(12, width // 30)
    font = _font(max(11, width // 36))
    bar = colour_bar(width - 2 * pad, bar_height, alpha=alpha)
    image = Image.new("RGB", (width, bar_height + 2 * font.size + 18), (255, 255, 255))
    image.paste(Image.fromarray(bar), (pad, 2))
    draw = ImageDraw.Draw(image)
    draw.rectangle((pad, 2, width - pad - 1, bar_height + 1), outline=_MUTED)
    for value in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = round(pad + value * (width - 2 * pad - 1))
        draw.line((x, bar_height + 2, x, bar_height + 6), fill=_MUTED)
        draw.text((x, bar_height + 7), f"{value:g}", fill=_MUTED, font=font, anchor="ma")
    caption = "heat, as a share of this image's strongest region"
    draw.text((width // 2, image.height - 2), caption, fill=_MUTED, font=font, anchor="md")
    return np.asarray(image)

"""Build a corpus of images that are NOT chest X-rays, entirely offline.

The "is this a frontal chest X-ray?" gate needs negatives for its tests and figures: ordinary
photos (colour and greyscale: a grey photo is a hard case), rendered documents, fake screenshots,
charts, blank frames, gradients, noise, patterns and medical-looking images that are not chest
radiographs. Sizes run from 128 to 1024 px with mixed aspect ratios, as JPEG and PNG.

Sources, all local, nothing is downloaded:

* scikit-learn's bundled sample photos (china, flower);
* images that scikit-image ships inside its package (astronaut, camera, coins, ...). The ones it
  would have to fetch (brain, kidney, human_mitosis, skin, lily, eagle, ...) are never requested;
  a bundled one that fails to load is skipped;
* everything else is drawn with Pillow, NumPy and OpenCV from a seeded generator.

``other_medical`` holds scikit-image's cell micrograph, immunohistochemistry slide, retina fundus
photo, microaneurysm crop and Shepp-Logan CT phantom, plus three synthesised images: an
ultrasound-like fan of speckle on black, a hand/bone-like radiograph and an axial MRI-like slice.

No chest X-ray is read, copied or written. The output is deterministic for a given seed (on one
install: JPEG encoders and font rasterisers may differ between library builds).

    python -m scripts.non_xray_corpus OUT_DIR [--seed N]
"""

from __future__ import annotations

import argparse
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import skimage.data
from PIL import Image, ImageDraw, ImageFont


class Item(NamedTuple):
    """One image before it is written: file stem, format ("png" or "jpg") and pixels."""

    stem: str
    fmt: str
    image: Image.Image


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
MIN_SIDE, MAX_SIDE = 128, 1024
# scikit-image images stored inside the package itself (no pooch, no network).
_BUNDLED_NAMES = """
astronaut binary_blobs brick camera cell checkerboard chelsea clock coffee coins colorwheel grass
gravel horse hubble_deep_field immunohistochemistry microaneurysms moon page retina rocket
shepp_logan_phantom text
"""
_WORD_TEXT = """
the of and a to in is for on with data model results method sample table figure value analysis
report study group time rate level mean total range test using between during after before first
second new system process quality review summary budget meeting project account customer order
invoice service market growth annual quarter
"""
SKIMAGE_BUNDLED = frozenset(_BUNDLED_NAMES.split())
WORDS = tuple(_WORD_TEXT.split())
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189))


# ---------------------------------------------------------------------------- helpers


def _rng(seed: int, key: str) -> np.random.Generator:
    """A generator for one image, independent of the order the images are made in."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _font(size: int) -> Font:
    """Pillow's bundled scalable font (no system fonts needed)."""
    return ImageFont.load_default(size=size)


def _to_image(array: np.ndarray) -> Image.Image:
    """A bool, float (0..1) or uint8 array, grey or RGB(A), as an L or RGB Pillow image."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        scale = 255.0 if float(array.max()) <= 1.0 else 1.0
        array = np.clip(array * scale, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    return Image.fromarray(array)


def _fit(image: Image.Image) -> Image.Image:
    """Rescale so the longer side is at most MAX_SIDE and the shorter at least MIN_SIDE."""
    w, h = image.size
    scale = max(min(1.0, MAX_SIDE / max(w, h)), MIN_SIDE / min(w, h))
    if scale == 1.0:
        return image
    return image.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)


def _skimage(name: str) -> np.ndarray | None:
    """A bundled scikit-image picture, or None if this install cannot load it offline."""
    if name not in SKIMAGE_BUNDLED:
        raise ValueError(f"{name} is not bundled with scikit-image; it would need a download")
    try:
        return getattr(skimage.data, name)()
    except Exception:  # a missing bundled file just drops that image
        return None


def _grey(array: np.ndarray) -> Image.Image:
    """A float array of any range as a uint8 greyscale image (clipped to 0..255)."""
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def _sentence(rng: np.random.Generator, lo: int = 6, hi: int = 15) -> str:
    """A capitalised pseudo-sentence of lo..hi words."""
    words = rng.choice(WORDS, size=int(rng.integers(lo, hi)))
    return " ".join(words).capitalize() + "."


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> list[str]:
    """Greedy word wrap to a pixel width."""
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            trial = word
        line = trial
    return [*lines, line] if line else lines


# ---------------------------------------------------------------------------- photo

PHOTO_SPECS: tuple[tuple[str, str, str], ...] = (
    ("astronaut", "jpg", "as_is"),
    ("astronaut", "jpg", "grey_big"),
    ("camera", "png", "as_is"),
    ("coins", "png", "as_is"),
    ("moon", "jpg", "as_is"),
    ("clock", "png", "as_is"),
    ("chelsea", "jpg", "as_is"),
    ("chelsea", "png", "grey"),
    ("coffee", "jpg", "grey"),
    ("rocket", "jpg", "as_is"),
    ("rocket", "png", "tall_crop"),
    ("hubble_deep_field", "jpg", "as_is"),
    ("horse", "png", "as_is"),
    ("brick", "png", "as_is"),
    ("grass", "jpg", "as_is"),
    ("gravel", "jpg", "as_is"),
    ("text", "png", "as_is"),
)
TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "as_is": lambda im: im,
    "grey": lambda im: im.convert("L"),
    "grey_big": lambda im: im.convert("L").resize((MAX_SIDE, MAX_SIDE), Image.Resampling.BICUBIC),
    "tall_crop": lambda im: im.crop((im.width // 3, 0, im.width // 3 + im.height // 2, im.height)),
}


def _photos(seed: int) -> list[Item]:
    """Natural photos: scikit-learn's two samples and scikit-image's bundled pictures."""
    from sklearn.datasets import load_sample_images

    china, flower = (_to_image(a) for a in load_sample_images().images)
    rng = _rng(seed, "photo")
    x, y = int(rng.integers(0, 240)), int(rng.integers(0, 120))
    items = [
        Item("china", "jpg", china),
        Item("china_grey", "jpg", china.convert("L")),
        Item("flower_crop", "png", flower.crop((x, y, x + 300, y + 300))),
        Item("flower_grey_wide", "jpg", flower.crop((0, 120, 640, 280)).convert("L")),
    ]
    for name, fmt, how in PHOTO_SPECS:
        array = _skimage(name)
        if array is not None:
            items.append(Item(f"{name}_{how}", fmt, _fit(TRANSFORMS[how](_to_image(array)))))
    return items


# ---------------------------------------------------------------------------- document


def _text_page(
    rng: np.random.Generator, size: tuple[int, int], font_size: int, bg: int = 255, fg: int = 0
) -> Image.Image:
    """A greyscale page with a title and paragraphs of pseudo-text."""
    w, h = size
    page = Image.new("L", size, bg)
    draw = ImageDraw.Draw(page)
    font, margin, line_h = _font(font_size), max(8, w // 12), int(font_size * 1.45)
    draw.text((margin, margin), _sentence(rng, 3, 6)[:-1], fill=fg, font=_font(font_size * 2))
    y = margin + font_size * 4
    while y < h - margin - line_h:
        text = " ".join(_sentence(rng) for _ in range(int(rng.integers(3, 7))))
        for line in _wrap(draw, text, font, w - 2 * margin):
            if y >= h - margin - line_h:
                break
            draw.text((margin, y), line, fill=fg, font=font)
            y += line_h
        y += line_h // 2
    return page


def _table_page(rng: np.random.Generator, size: tuple[int, int] = (900, 560)) -> Image.Image:
    """A white RGB page holding a ruled table of numbers with a shaded header."""
    w, h = size
    page = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(page)
    font, margin = _font(16), 40
    draw.text((margin, 15), "Table 2. " + _sentence(rng, 4, 7), fill="black", font=font)
    cols, rows = 5, 12
    cw, rh = (w - 2 * margin) / cols, (h - 60 - margin) / rows
    draw.rectangle((margin, 50, w - margin, 50 + rh), fill=(215, 215, 215))
    for r in range(rows):
        for c in range(cols):
            if r == 0:
                text = ["Item", "Mean", "SD", "N", "p"][c]
            else:
                text = f"Item {r}" if c == 0 else f"{rng.uniform(0, 100):.2f}"
            draw.text((margin + c * cw + 8, 50 + r * rh + 6), text, fill="black", font=font)
    for r in range(rows + 1):
        draw.line((margin, 50 + r * rh, w - margin, 50 + r * rh), fill="black", width=1)
    for c in range(cols + 1):
        draw.line((margin + c * cw, 50, margin + c * cw, 50 + rows * rh), fill="black", width=1)
    return page


def _scanned_page(rng: np.random.Generator) -> Image.Image:
    """A text page that looks scanned: grey paper, slight tilt, uneven light, noise."""
    page = _text_page(rng, (700, 990), 14, bg=228, fg=35)
    page = page.rotate(1.3, resample=Image.Resampling.BICUBIC, fillcolor=190)
    array = np.asarray(page, dtype=np.float32)
    array *= np.linspace(0.88, 1.0, array.shape[1], dtype=np.float32)[None, :]
    array += rng.normal(0.0, 8.0, array.shape).astype(np.float32)
    return _grey(cv2.GaussianBlur(array, (0, 0), 0.7))


def _documents(seed: int) -> list[Item]:
    """Rendered text pages, a table, a scanned-look page and scikit-image's book page."""
    rng = _rng(seed, "document")
    items = [
        Item("paragraphs", "png", _text_page(rng, (620, 877), 15)),
        Item("table", "png", _table_page(rng)),
        Item("scanned", "jpg", _scanned_page(rng)),
        Item("dense_landscape", "png", _text_page(rng, (1024, 724), 11)),
        Item("small_letter", "jpg", _text_page(rng, (256, 362), 8)),
    ]
    page = _skimage("page")
    if page is not None:
        items.append(Item("book_page", "png", _fit(_to_image(page))))
    return items


# ---------------------------------------------------------------------------- screenshot


LIGHT = ((245, 246, 248), (225, 228, 234), (30, 30, 30))  # background, panel, text
DARK = ((30, 30, 36), (45, 45, 54), (220, 220, 225))


def _app_window(rng: np.random.Generator, size: tuple[int, int], dark: bool) -> Image.Image:
    """A desktop application window: title bar, sidebar, buttons and coloured cards."""
    w, h = size
    bg, panel, fg = DARK if dark else LIGHT
    img = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(img)
    font, side = _font(14), w // 5
    draw.rectangle((0, 0, w, 30), fill=panel)
    for i, colour in enumerate(((237, 106, 94), (245, 191, 79), (98, 197, 84))):
        draw.ellipse((10 + 20 * i, 9, 22 + 20 * i, 21), fill=colour)
    draw.text((w // 2 - 70, 7), "Workspace - report.xlsx", fill=fg, font=font)
    draw.rectangle((0, 30, side, h), fill=panel)
    for i, label in enumerate(("Home", "Files", "Search", "Settings", "Help")):
        draw.text((16, 50 + 32 * i), label, fill=fg, font=font)
    for i, label in enumerate(("New", "Open", "Save", "Export")):
        x = side + 20 + 90 * i
        draw.rounded_rectangle((x, 45, x + 78, 75), 6, fill=PALETTE[i % 5])
        draw.text((x + 14, 52), label, fill="white", font=font)
    card_w, card_h = (w - side - 60) // 3, (h - 130) // 2
    for i in range(6):
        x0, y0 = side + 20 + (i % 3) * (card_w + 10), 95 + (i // 3) * (card_h + 10)
        colour = tuple(int(v) for v in rng.integers(60, 240, 3))
        draw.rectangle((x0, y0, x0 + card_w, y0 + card_h), fill=colour)
        draw.text((x0 + 8, y0 + 8), _sentence(rng, 2, 4), fill="black", font=font)
    return img


def _web_page(rng: np.random.Generator, size: tuple[int, int] = (800, 1000)) -> Image.Image:
    """A web page: header, navigation, hero banner, two text columns and a footer."""
    w, h = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font, big = _font(15), _font(34)
    draw.rectangle((0, 0, w, 60), fill=(20, 60, 120))
    draw.text((20, 16), "Example News", fill="white", font=_font(24))
    for i, link in enumerate(("World", "Business", "Science", "Sport")):
        draw.text((w - 360 + 85 * i, 22), link, fill=(200, 220, 255), font=font)
    hero = np.linspace((255, 140, 60), (120, 40, 160), w).astype(np.uint8)
    img.paste(Image.fromarray(np.repeat(hero[None], 240, axis=0)), (0, 60))
    draw.text((30, 150), _sentence(rng, 3, 6), fill="white", font=big)
    col_w = (w - 90) // 2
    for col in range(2):
        text = " ".join(_sentence(rng) for _ in range(18))
        for i, line in enumerate(_wrap(draw, text, font, col_w)[:30]):
            draw.text((30 + col * (col_w + 30), 330 + 20 * i), line, fill=(40, 40, 40), font=font)
    draw.rectangle((0, h - 70, w, h), fill=(235, 235, 235))
    draw.text((30, h - 45), "(c) 2024 Example News - Privacy - Terms", fill="gray", font=font)
    return img


def _dialog(rng: np.random.Generator, size: tuple[int, int] = (360, 200)) -> Image.Image:
    """A small modal dialog box with a message and OK / Cancel buttons."""
    w, h = size
    img = Image.new("RGB", size, (236, 236, 236))
    draw = ImageDraw.Draw(img)
    font = _font(14)
    draw.rectangle((0, 0, w, 28), fill=(0, 120, 215))
    draw.text((10, 6), "Confirm", fill="white", font=font)
    for i, line in enumerate(_wrap(draw, _sentence(rng, 10, 16), font, w - 40)[:3]):
        draw.text((20, 48 + 20 * i), line, fill="black", font=font)
    for x, label in ((w - 200, "OK"), (w - 105, "Cancel")):
        draw.rounded_rectangle((x, h - 45, x + 85, h - 15), 4, fill="white", outline="gray")
        draw.text((x + 25, h - 38), label, fill="black", font=font)
    return img


def _screenshots(seed: int) -> list[Item]:
    """Fake application windows, a web page and a dialog box."""
    rng = _rng(seed, "screenshot")
    return [
        Item("app_window", "png", _app_window(rng, (1024, 640), dark=False)),
        Item("dark_app", "png", _app_window(rng, (640, 400), dark=True)),
        Item("web_page", "jpg", _web_page(rng)),
        Item("dialog", "png", _dialog(rng)),
    ]


# ---------------------------------------------------------------------------- chart


def _axes(
    draw: ImageDraw.ImageDraw, size: tuple[int, int], title: str, top: float
) -> tuple[int, int, int, int]:
    """Axes, y ticks from 0 to top and a title; returns the plot box (x0, y0, x1, y1)."""
    w, h = size
    font = _font(12)
    x0, y0, x1, y1 = 60, 40, w - 20, h - 40
    draw.text((x0, 12), title, fill="black", font=_font(16))
    for i in range(6):
        y = y1 - (y1 - y0) * i / 5
        draw.line((x0, y, x1, y), fill="#e1e1e1")
        draw.text((10, y - 7), f"{top * i / 5:.0f}", fill="black", font=font)
    draw.line((x0, y0, x0, y1), fill="black", width=2)
    draw.line((x0, y1, x1, y1), fill="black", width=2)
    return x0, y0, x1, y1


def _bar_chart(rng: np.random.Generator, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A labelled bar chart."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    values = rng.uniform(10, 100, 6)
    x0, y0, x1, y1 = _axes(draw, size, "Sales by region", 100)
    step = (x1 - x0) / len(values)
    for i, v in enumerate(values):
        left = x0 + i * step + step * 0.15
        draw.rectangle((left, y1 - (y1 - y0) * v / 100, left + step * 0.7, y1), fill=PALETTE[i % 5])
        draw.text((left + step * 0.25, y1 + 8), "ABCDEF"[i], fill="black", font=_font(12))
    return img


def _line_chart(rng: np.random.Generator, size: tuple[int, int] = (800, 450)) -> Image.Image:
    """Three random-walk series as a line chart with a legend."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = _axes(draw, size, "Weekly visitors", 100)
    xs = np.linspace(x0, x1, 50)
    for k in range(3):
        walk = np.clip(50 + np.cumsum(rng.normal(0, 4, 50)), 2, 98)
        points = list(zip(xs, y1 - (y1 - y0) * walk / 100, strict=True))
        draw.line(points, fill=PALETTE[k], width=2)
        draw.rectangle((x1 - 110, y0 + 10 + 18 * k, x1 - 98, y0 + 22 + 18 * k), fill=PALETTE[k])
        draw.text((x1 - 92, y0 + 8 + 18 * k), f"series {k + 1}", fill="black", font=_font(12))
    return img


def _scatter_chart(rng: np.random.Generator, size: tuple[int, int] = (500, 500)) -> Image.Image:
    """Two coloured clusters as a scatter plot."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = _axes(draw, size, "Height vs weight", 100)
    for k, centre in enumerate(((35, 40), (65, 70))):
        for px, py in np.clip(rng.normal(centre, 9, (100, 2)), 1, 99):
            cx, cy = x0 + (x1 - x0) * px / 100, y1 - (y1 - y0) * py / 100
            draw.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), fill=PALETTE[k])
    return img


def _pie_chart(rng: np.random.Generator, size: tuple[int, int] = (400, 400)) -> Image.Image:
    """A pie chart of five shares."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    shares = rng.dirichlet(np.ones(5)) * 360
    start = 0.0
    for i, share in enumerate(shares):
        draw.pieslice((50, 50, 350, 350), start, start + share, fill=PALETTE[i], outline="white")
        start += share
    draw.text((20, 12), "Market share", fill="black", font=_font(16))
    return img


def _histogram(rng: np.random.Generator, size: tuple[int, int] = (600, 300)) -> Image.Image:
    """A greyscale histogram of a normal sample."""
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    counts, _ = np.histogram(rng.normal(0, 1, 2000), bins=30, range=(-3, 3))
    x0, y0, x1, y1 = _axes(draw, size, "Distribution", float(counts.max()))
    step = (x1 - x0) / len(counts)
    for i, c in enumerate(counts):
        top = y1 - (y1 - y0) * c / counts.max()
        draw.rectangle((x0 + i * step, top, x0 + (i + 1) * step - 1, y1), fill=120, outline=0)
    return img


def _charts(seed: int) -> list[Item]:
    """Bar, line, scatter and pie charts and a greyscale histogram, drawn with Pillow."""
    rng = _rng(seed, "chart")
    return [
        Item("bar", "png", _bar_chart(rng)),
        Item("line", "png", _line_chart(rng)),
        Item("scatter", "jpg", _scatter_chart(rng)),
        Item("pie", "png", _pie_chart(rng)),
        Item("histogram_grey", "png", _histogram(rng)),
    ]


# ---------------------------------------------------------------------------- synthetic


def _blanks(seed: int) -> list[Item]:
    """Constant frames: black, white, mid-grey, and near-constant greys with tiny noise."""
    rng = _rng(seed, "blank")
    return [
        Item("black", "png", Image.new("L", (256, 256), 0)),
        Item("white", "png", Image.new("RGB", (512, 384), "white")),
        Item("mid_grey", "jpg", Image.new("L", (300, 600), 128)),
        Item("grey_tiny_noise", "png", _grey(128 + rng.normal(0, 2, (512, 512)))),
        Item("near_black_noise", "jpg", _grey(6 + rng.normal(0, 2, (224, 224)))),
    ]


def _gradients(seed: int) -> list[Item]:
    """Horizontal, vertical and radial grey ramps and a diagonal colour ramp."""
    del seed  # gradients are fully determined
    yy, xx = np.mgrid[0:512, 0:512].astype(np.float32)
    radius = np.hypot(xx - 255.5, yy - 255.5) / 362.0
    y2, x2 = np.mgrid[0:1024, 0:1024].astype(np.float32)
    corner = np.hypot(x2 - 511.5, y2 - 511.5) / 724.0
    ramp = np.linspace(0, 1, 640, dtype=np.float32)
    colour = np.stack(
        [
            np.outer(np.linspace(0, 1, 360), ramp),
            np.ones((360, 640)) * 0.4,
            np.outer(np.linspace(1, 0, 360), 1 - ramp),
        ],
        axis=-1,
    )
    return [
        Item("horizontal", "png", _grey(np.tile(np.linspace(0, 255, 512), (256, 1)))),
        Item("vertical", "jpg", _grey(np.tile(np.linspace(255, 0, 512)[:, None], (1, 256)))),
        Item("radial", "png", _grey(255 * (1 - radius))),
        Item("radial_inverse", "jpg", _grey(255 * corner)),
        Item("diagonal_colour", "jpg", Image.fromarray((colour * 255).astype(np.uint8))),
    ]


def _noise(seed: int) -> list[Item]:
    """Uniform, Gaussian, salt-and-pepper, colour and low-frequency ("cloud") noise."""
    rng = _rng(seed, "noise")
    salt = np.full((300, 300), 128, np.uint8)
    mask = rng.random(salt.shape)
    salt[mask < 0.05], salt[mask > 0.95] = 0, 255
    clouds = cv2.resize(rng.normal(0, 1, (24, 32)).astype(np.float32), (640, 480))
    clouds = cv2.GaussianBlur(clouds, (0, 0), 12)
    clouds = 255 * (clouds - clouds.min()) / (clouds.max() - clouds.min())
    return [
        Item("uniform", "png", Image.fromarray(rng.integers(0, 256, (256, 256), np.uint8))),
        Item("gaussian", "png", _grey(rng.normal(128, 40, (256, 384)))),
        Item("salt_pepper", "png", Image.fromarray(salt)),
        Item("colour", "png", Image.fromarray(rng.integers(0, 256, (200, 200, 3), np.uint8))),
        Item("clouds", "jpg", _grey(clouds)),
    ]


def _random_shapes(rng: np.random.Generator, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """Random coloured rectangles, ellipses and lines on white."""
    w, h = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = sorted(rng.integers(0, w, 2)), sorted(rng.integers(0, h, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        box = (int(x[0]), int(y[0]), int(x[1]), int(y[1]))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.rectangle(box, fill=colour)
        elif kind == 1:
            draw.ellipse(box, fill=colour)
        else:
            draw.line(box, fill=colour, width=int(rng.integers(2, 8)))
    return img


def _patterns(seed: int) -> list[Item]:
    """Checkerboards, stripes, rings, random shapes and a few scikit-image patterns."""
    rng = _rng(seed, "pattern")
    yy, xx = np.mgrid[0:512, 0:512]
    bands = 255 * ((np.arange(640) // 20) % 2)
    stripes = np.array(PALETTE, np.uint8)[
        ((np.add.outer(np.arange(400), np.arange(600))) // 25) % 5
    ]
    items = [
        Item("checkerboard", "png", _grey(255 * ((xx // 32 + yy // 32) % 2))),
        Item("stripes_horizontal", "png", _grey(np.repeat(bands[:, None], 320, axis=1))),
        Item("stripes_diagonal", "png", Image.fromarray(stripes)),
        Item("rings", "jpg", _grey(127.5 + 127.5 * np.sin(np.hypot(xx - 256, yy - 256) / 6))),
        Item("random_shapes", "png", _random_shapes(rng)),
    ]
    for name in ("checkerboard", "colorwheel"):
        array = _skimage(name)
        if array is not None:
            items.append(Item(f"skimage_{name}", "png", _to_image(array)))
    blobs = skimage.data.binary_blobs(length=384, rng=seed)
    items.append(Item("binary_blobs", "png", _to_image(blobs)))
    return items


# ---------------------------------------------------------------------------- other_medical


def _ultrasound(rng: np.random.Generator, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """An ultrasound-like sector: speckle in a fan on black, a dark cyst, a bright band."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xx - w / 2, yy + 40)
    fan = (np.abs(np.degrees(np.arctan2(xx - w / 2, yy + 40))) < 35) & (r > 70) & (r < h + 10)
    speckle = cv2.GaussianBlur(rng.rayleigh(0.35, (h, w)).astype(np.float32), (0, 0), 2.0, 0.0, 0.8)
    tissue = speckle * np.clip(1.1 - (r - 70) / (h * 1.2), 0.15, 1.0)
    tissue[((xx - w * 0.55) / 55) ** 2 + ((yy - h * 0.55) / 38) ** 2 < 1] *= 0.12
    tissue[np.abs(r - h * 0.35) < 6] *= 1.6
    img = _grey(np.where(fan, tissue * 330, 0))
    draw = ImageDraw.Draw(img)
    draw.text((12, 10), "GEN  12 cm  62 Hz", fill=230, font=_font(13))
    for i in range(1, 6):
        draw.line((w - 30, 80 * i, w - 20, 80 * i), fill=200, width=2)
    return img


FingerSpec = tuple[float, float, float, tuple[float, ...]]
FINGERS: tuple[
    FingerSpec, ...
] = (  # knuckle x, knuckle y (fractions), angle from vertical (deg), phalanx lengths
    (0.27, 0.62, -40.0, (0.10, 0.08)),
    (0.38, 0.50, -10.0, (0.12, 0.07, 0.05)),
    (0.49, 0.48, -2.0, (0.13, 0.08, 0.05)),
    (0.60, 0.50, 7.0, (0.12, 0.075, 0.05)),
    (0.70, 0.55, 18.0, (0.09, 0.055, 0.045)),
)


def _capsule(canvas: np.ndarray, p: np.ndarray, q: np.ndarray, width: float) -> None:
    """Draw a thick round-ended segment from p to q (x, y) with value 1 onto canvas."""
    cv2.line(canvas, tuple(int(v) for v in p), tuple(int(v) for v in q), 1.0, max(1, int(width)))


def _finger(
    rng: np.random.Generator, tissue: np.ndarray, bone: np.ndarray, spec: FingerSpec
) -> None:
    """One metacarpal and its phalanges (bone, with joint gaps) inside a finger (tissue)."""
    h, w = bone.shape
    fx, fy, angle, lengths = spec
    a = np.radians(angle + rng.normal(0, 2))
    step = np.array([np.sin(a), -np.cos(a)]) * h
    knuckle = np.array([w * fx, h * fy])
    _capsule(tissue, knuckle, knuckle + step * sum(lengths), w * 0.09)
    joints = [np.array([w * (0.5 + (fx - 0.49) * 0.45), h * 0.75]), knuckle]
    for length in lengths:
        joints.append(joints[-1] + step * length)
    for p, q in zip(joints, joints[1:], strict=False):
        gap = (q - p) * 0.1
        _capsule(bone, p + gap, q - gap, w * 0.035)


def _hand_radiograph(rng: np.random.Generator, size: tuple[int, int] = (512, 640)) -> Image.Image:
    """A crude hand/bone-like radiograph: bright bones inside grey soft tissue on black."""
    w, h = size
    tissue, bone = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    hull = [(int(w * 0.34), h), (int(w * 0.66), h), (int(w * 0.74), int(h * 0.6))]
    hull += [(int(w * fx), int(h * fy)) for fx, fy, _, _ in FINGERS]
    cv2.fillConvexPoly(tissue, cv2.convexHull(np.array(hull, np.int32)), 1.0)
    for i in (-1, 1):  # radius and ulna
        _capsule(
            bone,
            np.array([w * (0.5 + 0.07 * i), h]),
            np.array([w * (0.5 + 0.06 * i), h * 0.9]),
            w * 0.06,
        )
    for k in range(6):  # carpals
        centre = (int(w * (0.42 + 0.055 * (k % 3))), int(h * (0.8 + 0.035 * (k // 3))))
        cv2.ellipse(bone, centre, (int(w * 0.025), int(h * 0.014)), 0, 0, 360, 1.0, -1)
    for spec in FINGERS:
        _finger(rng, tissue, bone, spec)
    tissue, bone = cv2.GaussianBlur(tissue, (0, 0), 4), cv2.GaussianBlur(bone, (0, 0), 1.5)
    return _grey(20 + 70 * tissue + 130 * bone + rng.normal(0, 4, (h, w)))


def _mri_slice(rng: np.random.Generator, n: int = 256) -> Image.Image:
    """An axial MRI-like head slice: scalp, skull, grey and white matter, ventricles."""
    img = np.zeros((n, n), np.float32)
    c = (n // 2, n // 2)
    for (ax, ay), value in (
        ((0.36, 0.44), 0.9),
        ((0.33, 0.41), 0.12),
        ((0.31, 0.39), 0.55),
        ((0.22, 0.30), 0.72),
    ):
        cv2.ellipse(img, c, (int(n * ax), int(n * ay)), 0, 0, 360, value, -1)
    for side in (-1, 1):
        centre = (n // 2 + side * n // 22, n // 2 - n // 30)
        cv2.ellipse(img, centre, (n // 28, n // 8), side * 18, 0, 360, 0.1, -1)
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    noisy = np.hypot(img + rng.normal(0, 0.04, img.shape), rng.normal(0, 0.04, img.shape))
    return _grey(255 * noisy)


def _other_medical(seed: int) -> list[Item]:
    """Medical-looking images that are not chest X-rays (bundled and synthesised)."""
    rng = _rng(seed, "other_medical")
    items = []
    for name, fmt in (
        ("cell", "jpg"),
        ("immunohistochemistry", "jpg"),
        ("retina", "jpg"),
        ("microaneurysms", "png"),
        ("shepp_logan_phantom", "png"),
    ):
        array = _skimage(name)
        if array is not None:
            items.append(Item(name, fmt, _fit(_to_image(array))))
    items += [
        Item("ultrasound_fan", "jpg", _ultrasound(rng)),
        Item("hand_radiograph", "png", _hand_radiograph(rng)),
        Item("mri_slice", "png", _mri_slice(rng)),
    ]
    return items


# ---------------------------------------------------------------------------- corpus

CATEGORIES: dict[str, Callable[[int], list[Item]]] = {
    "photo": _photos,
    "document": _documents,
    "screenshot": _screenshots,
    "chart": _charts,
    "blank": _blanks,
    "gradient": _gradients,
    "noise": _noise,
    "pattern": _patterns,
    "other_medical": _other_medical,
}


def _save(item: Item, folder: Path, category: str) -> Path:
    """Write one image as greyscale or RGB PNG/JPEG and return its path."""
    image = item.image if item.image.mode in ("L", "RGB") else item.image.convert("RGB")
    path = folder / f"{category}_{item.stem}.{item.fmt}"
    if item.fmt == "jpg":
        image.save(path, "JPEG", quality=88)
    else:
        image.save(path, "PNG")
    return path


def make_corpus(folder: str | Path, seed: int = 0) -> list[tuple[Path, str]]:
    """Write the non-chest-X-ray images into folder and return (path, category) for each.

    Files are named ``<category>_<stem>.<png|jpg>`` directly in folder (created if needed);
    existing files of the same name are overwritten. Deterministic for a given seed.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, str]] = []
    for category, build in CATEGORIES.items():
        written += [(_save(item, out, category), category) for item in build(seed)]
    return written


def main() -> None:
    """CLI: write the corpus into OUT_DIR and print one line per category with its count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    counts = Counter(category for _, category in make_corpus(args.out_dir, args.seed))
    for category, count in counts.items():
        print(f"{category:14s} {count}")


if __name__ == "__main__":
    main()

"""Image corruptions of the stress suite: MedMNIST-C's chest X-ray set, framing and markers.

**MedMNIST-C** (Di Salvo, Doerrich, Ledig 2024, arXiv:2406.17536; the ``medmnistc`` package,
``corruptions/registry.py``) defines for ``pneumoniamnist`` 13 corruptions at 5 severities
each. The package builds on PyTorch, torchvision and Wand, so its formulas are re-implemented
here on NumPy, OpenCV and Pillow with the published parameters (:data:`MEDMNIST_C`), following
its pipeline: the grey image is made RGB, corrupted, and converted back with Pillow's
``convert("L")`` (ITU-R 601-2 weights, so per-channel noise is averaged down to about 0.67 of
its per-channel standard deviation, exactly as in the published benchmark). Differences that
remain: random numbers come from a seeded :class:`numpy.random.Generator` (the package uses
NumPy's global state), and JPEG goes through Pillow exactly as there. Severity ``k`` here is
the package's index ``k - 1`` (its "severity 2 and 4 of 0-4" are our ``@3`` and ``@5``).

**Framing** (``zoom_in``, ``lung_crop``, ``shift``) and **burned-in markers** are this
project's: the official test split's healthy children that the model flags are tightly framed
(lungs filling the film) and often carry a large laterality letter.

Every corruption takes a grey ``(H, W)`` image in [0, 255] (any float dtype; it is rounded to
8 bits first, as a film is) and a random generator, and returns a float32 ``(H, W)`` image in
[0, 255]. Families split into those the operating point may be chosen on (and training may
augment with), :data:`CHOICE_FAMILIES`, and those kept for evaluation only,
:data:`HELD_OUT_FAMILIES`, so that the threshold is not tuned to the whole suite.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np
from PIL import Image, ImageEnhance

__all__ = [
    "CHOICE_FAMILIES",
    "FAMILIES",
    "FRAMING",
    "HELD_OUT_FAMILIES",
    "MEDMNIST_C",
    "MEDMNIST_C_ALEXNET",
    "SEVERITIES",
    "Corruption",
    "corrupt_batch",
    "corruption",
    "suite",
    "to_grey",
]

Apply = Callable[[np.ndarray, np.random.Generator], np.ndarray]

SEVERITIES = (1, 2, 3, 4, 5)

#: ``pneumoniamnist`` parameters of MedMNIST-C's registry, severity 1 to 5. ``gaussian_blur``
#: lists six kernels there; its five severities use the first five.
MEDMNIST_C: dict[str, tuple[float, ...]] = {
    "pixelate": (0.8, 0.7, 0.6, 0.5, 0.4),  # resize factor (Pillow BOX down, then up)
    "jpeg_compression": (50, 30, 15, 10, 7),  # Pillow JPEG quality
    "gaussian_noise": (0.04, 0.05, 0.06, 0.07, 0.08),  # sigma on [0, 1] per channel
    "speckle_noise": (0.05, 0.07, 0.10, 0.15, 0.20),  # sigma of x * N(0, sigma)
    "impulse_noise": (0.005, 0.01, 0.013, 0.017, 0.02),  # salt-and-pepper amount per channel
    "shot_noise": (300, 200, 150, 100, 80),  # Poisson(x * m) / m
    "gaussian_blur": (3, 5, 7, 9, 11),  # torchvision kernel size, default sigma
    "brightness_up": (1.1, 1.2, 1.3, 1.4, 1.5),  # PIL ImageEnhance.Brightness factor
    "brightness_down": (0.9, 0.8, 0.7, 0.6, 0.5),
    "contrast_up": (1.1, 1.2, 1.3, 1.4, 1.6),  # PIL ImageEnhance.Contrast factor
    "contrast_down": (0.9, 0.8, 0.7, 0.6, 0.4),
    "gamma_corr_up": (1.1, 1.2, 1.3, 1.4, 1.6),  # torchvision adjust_gamma (>1 darkens)
    "gamma_corr_down": (0.9, 0.8, 0.7, 0.6, 0.4),
}
#: MedMNIST-C's AlexNet baseline on pneumoniamnist (``utils/baselines.py``): clean balanced
#: error and the mean over severities per corruption; the relative balanced error divides by it.
MEDMNIST_C_ALEXNET: dict[str, float] = {
    "clean": 0.10085470085470083,
    "pixelate": 0.22102564102564104,
    "jpeg_compression": 0.2798290598290598,
    "gaussian_noise": 0.4414529914529915,
    "speckle_noise": 0.3457264957264957,
    "impulse_noise": 0.4581196581196581,
    "shot_noise": 0.4106837606837607,
    "gaussian_blur": 0.2730769230769231,
    "brightness_up": 0.14649572649572645,
    "brightness_down": 0.2782051282051282,
    "contrast_up": 0.09529914529914527,
    "contrast_down": 0.23743589743589744,
    "gamma_corr_up": 0.09606837606837607,
    "gamma_corr_down": 0.16641025641025642,
}
#: This project's framing and marker families, severity 1 to 5.
FRAMING: dict[str, tuple[float, ...]] = {
    "zoom_in": (1.08, 1.16, 1.24, 1.32, 1.40),  # central zoom factor
    "lung_crop": (0.04, 0.08, 0.12, 0.16, 0.20),  # share cut from each side (x1.5 at the foot)
    "shift": (0.04, 0.08, 0.12, 0.16, 0.20),  # translation, share of the side, random direction
    "markers": (0.06, 0.09, 0.12, 0.15, 0.18),  # letter height, share of the side
}
FAMILIES: tuple[str, ...] = (*MEDMNIST_C, *FRAMING)
#: Families the operating point is chosen on and that training may augment with: one or more
#: of each kind (resolution, noise, blur, exposure, contrast, framing).
CHOICE_FAMILIES: tuple[str, ...] = (
    "pixelate",
    "gaussian_noise",
    "shot_noise",
    "gaussian_blur",
    "brightness_down",
    "contrast_up",
    "gamma_corr_up",
    "zoom_in",
    "shift",
)
#: Families kept for evaluation only (never seen by a threshold rule or by augmentation).
HELD_OUT_FAMILIES: tuple[str, ...] = tuple(f for f in FAMILIES if f not in CHOICE_FAMILIES)


@dataclass(frozen=True)
class Corruption:
    """One corruption at one severity.

    Attributes:
        name: Key in reports, ``"<family>@<severity>"``.
        description: One line for tables.
        apply: ``(H, W)`` image in [0, 255] and a generator -> float32 ``(H, W)`` in [0, 255].
        family: e.g. ``"pixelate"``.
        severity: 1 (mildest) to 5.
    """

    name: str
    description: str
    apply: Apply
    family: str = ""
    severity: int = 0


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """Pillow's ``convert("L")`` of uint8 ``(H, W, 3)``: ``(19595 R + 38470 G + 7471 B) >> 16``."""
    weights = np.array([19595, 38470, 7471], np.int64)
    return ((rgb.astype(np.int64) @ weights + 0x8000) >> 16).astype(np.uint8)


def _film(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0, 255)).astype(np.uint8)


def _rgb01(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1) / 255.0


def _back(rgb01: np.ndarray) -> np.ndarray:
    # The package's (x * 255).astype(np.uint8) truncates; then Image.convert("L").
    return to_grey((np.clip(rgb01, 0, 1) * 255).astype(np.uint8))


def _pixelate(factor: float, grey: np.ndarray, _: np.random.Generator) -> np.ndarray:
    image = Image.fromarray(grey)
    width, height = image.size
    small = image.resize((int(width * factor), int(height * factor)), Image.BOX)
    return np.asarray(small.resize((width, height), Image.BOX))


def _jpeg(quality: float, grey: np.ndarray, _: np.random.Generator) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(grey).convert("RGB").save(buffer, "JPEG", quality=int(quality))
    return np.asarray(Image.open(buffer).convert("L"))


def _gaussian_noise(sigma: float, grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = _rgb01(grey)
    return _back(x + rng.normal(0.0, sigma, x.shape))


def _speckle_noise(sigma: float, grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = _rgb01(grey)
    return _back(x + x * rng.normal(0.0, sigma, x.shape))


def _shot_noise(scale: float, grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _back(rng.poisson(_rgb01(grey) * scale) / scale)


def _impulse_noise(amount: float, grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # skimage.util.random_noise(mode="s&p", salt_vs_pepper=0.5) on each channel.
    x = _rgb01(grey)
    flipped = rng.random(x.shape) < amount
    salted = rng.random(x.shape) < 0.5
    x[flipped & salted], x[flipped & ~salted] = 1.0, 0.0
    return _back(x)


def _gaussian_blur(kernel: float, grey: np.ndarray, _: np.random.Generator) -> np.ndarray:
    # torchvision's gaussian_blur: sigma from the kernel size, reflect padding, then rounding.
    size = int(kernel)
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    blurred = cv2.GaussianBlur(
        grey.astype(np.float32),
        (size, size),
        sigma,
        sigmaY=sigma,
        borderType=cv2.BORDER_REFLECT_101,
    )
    return _film(blurred)


def _brightness(factor: float, grey: np.ndarray, _: np.random.Generator) -> np.ndarray:
    return np.asarray(ImageEnhance.Brightness(Image.fromarray(grey)).enhance(factor))


def _contrast(factor: float, grey: np.ndarray, _: np.random.Generator) -> np.ndarray:
    return np.asarray(ImageEnhance.Contrast(Image.fromarray(grey)).enhance(factor))


def _gamma(gamma: float, grey: np.ndarray, _: np.random.Generator) -> np.ndarray:
    # torchvision's adjust_gamma on a PIL image: a lookup table with truncation.
    table = np.array([int((255 + 1 - 1e-3) * (v / 255.0) ** gamma) for v in range(256)])
    return table.astype(np.uint8)[grey]


def _zoom_in(factor: float, grey: np.ndarray, _: np.random.Generator) -> np.ndarray:
    height, width = grey.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, factor)
    return cv2.warpAffine(grey.astype(np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR)


def _lung_crop(share: float, grey: np.ndarray, _: np.random.Generator) -> np.ndarray:
    # Shoulders, arms and abdomen go: a little off the top and sides, more off the foot.
    height, width = grey.shape
    top, side, foot = int(share * height), int(share * width), int(1.5 * share * height)
    field = grey[top : height - foot, side : width - side].astype(np.float32)
    return cv2.resize(field, (width, height), interpolation=cv2.INTER_AREA)


def _shift(share: float, grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = grey.shape
    angle = rng.uniform(0, 2 * np.pi)
    dx, dy = share * width * np.cos(angle), share * height * np.sin(angle)
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(
        grey.astype(np.float32), matrix, (width, height), borderMode=cv2.BORDER_CONSTANT
    )


def _markers(height_share: float, grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A laterality letter in an upper corner, and from severity 3 a line of burned-in text.
    out = grey.copy()
    side = grey.shape[0]
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = height_share * side / 22.0  # HERSHEY_SIMPLEX capitals are ~22 px high at scale 1
    thickness = max(1, round(scale * 2))
    letter = "L" if rng.random() < 0.5 else "R"
    (w, h), _ = cv2.getTextSize(letter, font, scale, thickness)
    margin = int(0.04 * side)
    x = margin if rng.random() < 0.5 else side - margin - w
    cv2.putText(out, letter, (x, margin + h), font, scale, 255, thickness, cv2.LINE_AA)
    if height_share >= FRAMING["markers"][2]:
        small = scale / 2.5
        cv2.putText(out, "PORTABLE AP", (margin, side - margin), font, small, 235,
                    max(1, thickness // 2), cv2.LINE_AA)  # fmt: skip
    return out


_FUNCTIONS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "pixelate": (_pixelate, "pixelate to {p:.0%} of the side (box filter)"),
    "jpeg_compression": (_jpeg, "JPEG at quality {p:.0f}"),
    "gaussian_noise": (_gaussian_noise, "Gaussian noise, sigma {p:.2f} per RGB channel"),
    "speckle_noise": (_speckle_noise, "speckle noise, sigma {p:.2f}"),
    "impulse_noise": (_impulse_noise, "salt-and-pepper noise, {p:.1%} per RGB channel"),
    "shot_noise": (_shot_noise, "Poisson noise, {p:.0f} photons at white"),
    "gaussian_blur": (_gaussian_blur, "Gaussian blur, {p:.0f} px kernel"),
    "brightness_up": (_brightness, "brightness x {p:.1f}"),
    "brightness_down": (_brightness, "brightness x {p:.1f}"),
    "contrast_up": (_contrast, "contrast x {p:.1f}"),
    "contrast_down": (_contrast, "contrast x {p:.1f}"),
    "gamma_corr_up": (_gamma, "gamma {p:.1f} (darker)"),
    "gamma_corr_down": (_gamma, "gamma {p:.1f} (brighter)"),
    "zoom_in": (_zoom_in, "zoom in x {p:.2f}"),
    "lung_crop": (_lung_crop, "crop to the lung field ({p:.0%} off top and sides)"),
    "shift": (_shift, "shift by {p:.0%} of the side (black border)"),
    "markers": (_markers, "burned-in laterality letter, {p:.0%} of the side high"),
}


def _applied(function: Callable[..., np.ndarray], parameter: float) -> Apply:
    def apply(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return function(parameter, _film(image), rng).astype(np.float32)

    return apply


def corruption(family: str, severity: int) -> Corruption:
    """One family at one severity.

    Args:
        family: A name of :data:`FAMILIES`.
        severity: 1 to 5.

    Returns:
        The :class:`Corruption`, keyed ``"<family>@<severity>"``.

    Raises:
        ValueError: Unknown family or severity.
    """
    if family not in _FUNCTIONS:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}. Received: {family!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be 1 to 5. Received: severity={severity!r}")
    parameter = {**MEDMNIST_C, **FRAMING}[family][severity - 1]
    function, text = _FUNCTIONS[family]
    return Corruption(
        f"{family}@{severity}",
        text.format(p=parameter),
        _applied(partial(function), parameter),
        family,
        severity,
    )


def suite(families: tuple[str, ...] = FAMILIES) -> tuple[Corruption, ...]:
    """Every severity of each family, family by family (``pixelate@1`` ... ``markers@5``)."""
    return tuple(corruption(f, s) for f in families for s in SEVERITIES)


def corrupt_batch(
    images: np.ndarray,
    rng: np.random.Generator,
    probability: float,
    families: tuple[str, ...] = CHOICE_FAMILIES,
) -> np.ndarray:
    """Corruption augmentation: each image, with ``probability``, gets one random key.

    As MedMNIST-C's ``AugMedMNISTC``, a family is drawn uniformly from ``families`` (the choice
    families by default: the held-out ones must stay unseen), then a severity from 1 to 5.

    Args:
        images: ``(n, H, W)`` or ``(n, H, W, 1)`` grey images in [0, 255].
        rng: Source of every random choice.
        probability: Share of images corrupted, in [0, 1].
        families: Families to draw from.

    Returns:
        float32 images of the input's shape.
    """
    out = np.array(images, np.float32, copy=True)
    for index in range(len(out)):
        if rng.random() >= probability:
            continue
        key = corruption(str(rng.choice(families)), int(rng.integers(1, 6)))
        grey = out[index, ..., 0] if out.ndim == 4 else out[index]
        grey[...] = key.apply(grey, rng)
    return out

"""The stress suite's corruptions: MedMNIST-C's published formulas, framing and markers.

Expected values are worked out from the ``medmnistc`` package's code (0.1.0,
``corruptions/*.py`` and ``registry.py``): each corruption runs on an RGB copy of the grey
image and is converted back with Pillow's ``convert("L")``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cxr_core.imaging import corruptions
from tests.conftest import synthetic_xray

ALL = corruptions.suite()
RGB_TO_GREY_NOISE = float(np.sqrt(0.299**2 + 0.587**2 + 0.114**2))  # 0.6686


def _xray(seed: int = 1, size: int = 96) -> np.ndarray:
    return synthetic_xray(seed, np.random.default_rng(seed), size).astype(np.float32)


def _apply(family: str, severity: int, image: np.ndarray, seed: int = 0) -> np.ndarray:
    return corruptions.corruption(family, severity).apply(image, np.random.default_rng(seed))


def test_the_suite_has_13_medmnist_c_families_plus_framing_at_5_severities() -> None:
    names = [c.name for c in ALL]
    assert len(names) == len(set(names)) == 85
    assert len(corruptions.MEDMNIST_C) == 13
    assert names[0] == "pixelate@1" and names[-1] == "markers@5"
    assert {c.severity for c in ALL} == {1, 2, 3, 4, 5}
    assert set(corruptions.CHOICE_FAMILIES).isdisjoint(corruptions.HELD_OUT_FAMILIES)
    assert set(corruptions.CHOICE_FAMILIES) | set(corruptions.HELD_OUT_FAMILIES) == set(
        corruptions.FAMILIES
    )
    with pytest.raises(ValueError, match="Received"):
        corruptions.corruption("pixelate", 6)
    with pytest.raises(ValueError, match="Received"):
        corruptions.corruption("motion_blur", 1)


@pytest.mark.parametrize("item", ALL, ids=lambda c: c.name)
def test_each_key_is_deterministic_with_a_seed_and_keeps_shape_and_range(item) -> None:
    image = _xray()
    out = item.apply(image, np.random.default_rng(3))
    assert out.shape == image.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    assert np.array_equal(out, item.apply(image, np.random.default_rng(3)))
    assert np.abs(out - image).mean() > 0.1  # it does change the image


def test_gamma_brightness_and_contrast_give_the_published_pixel_values() -> None:
    flat = np.full((8, 8), 128.0)
    # torchvision adjust_gamma (PIL): int((255 + 1 - 1e-3) * (128 / 255) ** gamma)
    assert _apply("gamma_corr_up", 5, flat)[0, 0] == 84  # gamma 1.6
    assert _apply("gamma_corr_down", 5, flat)[0, 0] == 194  # gamma 0.4
    # PIL ImageEnhance.Brightness: a blend with black, factor 0.5 and 1.5.
    assert _apply("brightness_down", 5, np.full((8, 8), 101.0))[0, 0] == 50
    assert _apply("brightness_up", 5, np.full((8, 8), 101.0))[0, 0] == 151
    # PIL ImageEnhance.Contrast: a blend with the mean (100) of a 50 | 150 image.
    halves = np.zeros((8, 8))
    halves[:, :4], halves[:, 4:] = 50, 150
    assert set(np.unique(_apply("contrast_down", 5, halves))) == {80.0, 120.0}  # x 0.4
    assert set(np.unique(_apply("contrast_up", 5, halves))) == {20.0, 180.0}  # x 1.6


def test_blur_and_pixelate_match_the_published_kernels() -> None:
    # torchvision gaussian_blur, kernel 3: sigma = 0.3 * ((3 - 1) * 0.5 - 1) + 0.8 = 0.8.
    dot = np.zeros((15, 15))
    dot[7, 7] = 255
    weights = np.exp(-(np.arange(-1, 2) ** 2) / (2 * 0.8**2))
    expected = np.rint(255 * np.outer(weights, weights) / weights.sum() ** 2)
    assert np.array_equal(_apply("gaussian_blur", 1, dot)[6:9, 6:9], expected)  # 69 centre
    # Pillow BOX to half the side and back averages a 1-pixel checkerboard to grey.
    board = (np.indices((224, 224)).sum(0) % 2) * 255.0
    assert set(np.unique(_apply("pixelate", 4, board))) == {128.0}


@pytest.mark.parametrize(
    ("family", "expected_std"),
    [
        ("gaussian_noise", 0.08 * 255 * RGB_TO_GREY_NOISE),  # 13.6
        ("shot_noise", np.sqrt(128 / 255 / 80) * 255 * RGB_TO_GREY_NOISE),  # 13.5
        ("speckle_noise", 0.20 * 128 * RGB_TO_GREY_NOISE),  # 17.1
    ],
)
def test_noise_at_severity_5_has_the_published_level_after_the_grey_conversion(
    family: str, expected_std: float
) -> None:
    out = _apply(family, 5, np.full((224, 224), 128.0), seed=1)
    assert out.std() == pytest.approx(expected_std, rel=0.05)


def test_impulse_noise_hits_the_published_share_of_pixels() -> None:
    out = _apply("impulse_noise", 5, np.full((224, 224), 128.0), seed=1)
    # amount 0.02 per RGB channel: a grey pixel changes when any channel flips.
    assert (out != 128).mean() == pytest.approx(1 - (1 - 0.02) ** 3, rel=0.1)


def _laplacian_variance(image: np.ndarray) -> float:
    return float(cv2.Laplacian(image.astype(np.float32), cv2.CV_32F).var())


@pytest.mark.parametrize(
    ("family", "measure", "rising"),
    [
        ("gaussian_blur", _laplacian_variance, False),
        ("pixelate", lambda x: float(np.abs(x - _xray()).mean()), True),
        ("jpeg_compression", lambda x: float(np.abs(x - _xray()).mean()), True),
        ("gaussian_noise", lambda x: float((x - _xray()).std()), True),
        ("speckle_noise", lambda x: float((x - _xray()).std()), True),
        ("shot_noise", lambda x: float((x - _xray()).std()), True),
        ("impulse_noise", lambda x: float((x != _xray()).mean()), True),
        ("brightness_down", np.mean, False),
        ("brightness_up", np.mean, True),
        ("contrast_down", np.std, False),
        ("contrast_up", np.std, True),
        ("gamma_corr_up", np.mean, False),
        ("gamma_corr_down", np.mean, True),
        ("zoom_in", lambda x: float(np.abs(x - _xray()).mean()), True),
        ("lung_crop", lambda x: float(np.abs(x - _xray()).mean()), True),
        ("markers", lambda x: float((x != _xray()).sum()), True),
    ],
)
def test_severity_is_monotone_where_the_formula_is(family: str, measure, rising: bool) -> None:
    values = [measure(_apply(family, s, _xray(), seed=2)) for s in corruptions.SEVERITIES]
    steps = np.diff(values)
    assert (steps > 0).all() if rising else (steps < 0).all(), values


def test_to_grey_is_pillows_rgb_to_l() -> None:
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert np.array_equal(corruptions.to_grey(rgb), np.asarray(Image.fromarray(rgb).convert("L")))

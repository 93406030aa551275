"""Drawing a Grad-CAM heatmap over an X-ray so that the anatomy stays visible.

A heatmap is painted with a perceptual colour map (inferno: dark purple -> orange -> pale
yellow, lightness rising with the value, readable in greyscale and by most colour-blind
readers) whose *opacity grows with the value*: where the map is 0 the X-ray shows untouched,
and only the strongest regions reach the chosen maximum opacity. A jet map blended at one
opacity everywhere tints the whole film blue and hides it at high opacity; this does not.

Only NumPy and OpenCV are used (no TensorFlow), so the app can blend cached maps at a new
opacity in milliseconds, and the report can draw the same legend.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from cxr_core.errors import ConfigError

__all__ = ["COLORMAP", "DEFAULT_OPACITY", "colour_bar", "heat_opacity", "overlay"]

#: The OpenCV colour map of every heatmap: inferno (perceptually uniform, lightness rising).
COLORMAP = cv2.COLORMAP_INFERNO
#: Maximum opacity of the heatmap where it is strongest, unless the user chooses another.
DEFAULT_OPACITY = 0.6
# Values below _FLOOR are fully transparent; from there the opacity rises smoothly to its
# maximum at _CEILING and above, so broad faint areas of the map do not veil the film.
_FLOOR = 0.15
_CEILING = 0.85


@lru_cache(maxsize=8)
def _colour_table(colormap: int) -> np.ndarray:
    """``(256, 1, 3)`` uint8 RGB colour of each heat level 0-255 (read-only; a cv2.LUT table)."""
    levels = np.arange(256, dtype=np.uint8).reshape(256, 1)
    table = cv2.cvtColor(cv2.applyColorMap(levels, colormap), cv2.COLOR_BGR2RGB)
    table.setflags(write=False)
    return table


def _ramp(heat: np.ndarray) -> np.ndarray:
    """Smoothstep from 0 at ``_FLOOR`` to 1 at ``_CEILING`` of a float map in [0, 1]."""
    t = np.clip((heat - _FLOOR) / (_CEILING - _FLOOR), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _check_opacity(alpha: float) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"alpha must be a number in [0, 1]. Received: alpha={alpha!r}")
    return value


def heat_opacity(heat: np.ndarray | float, alpha: float = DEFAULT_OPACITY) -> np.ndarray:
    """The opacity at which each heat value is painted.

    Args:
        heat: Heat values in [0, 1] (any shape).
        alpha: Maximum opacity, in [0, 1], reached where the heat is high.

    Returns:
        float32 opacities of ``heat``'s shape, in [0, ``alpha``]: 0 for values up to 0.15,
        rising smoothly (never falling) to ``alpha`` at 0.85 and above.

    Raises:
        ConfigError: ``alpha`` is outside [0, 1].
    """
    alpha = _check_opacity(alpha)
    heat = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0.0, 1.0)
    return (alpha * _ramp(heat)).astype(np.float32)


def _heat_levels(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float [0, 1] or uint8 0-255 map -> uint8 levels 0-255 of ``shape`` ``(H, W)``."""
    heat = np.asarray(heatmap)
    if heat.ndim != 2 or min(heat.shape) < 1:
        raise ConfigError(f"heatmap must be a 2-D array. Received: shape={heat.shape}")
    if heat.dtype != np.uint8:
        heat = heat.astype(np.float32)
        if np.isnan(heat).any():  # a check is 10x cheaper than nan_to_num on a full-size map
            heat = np.nan_to_num(heat)
        # Negatives set to 0 first, so convertScaleAbs's absolute value never applies; it
        # saturates values above 1 at 255 itself.
        heat = cv2.convertScaleAbs(cv2.max(heat, 0.0), alpha=255.0)
    if heat.shape != shape:
        heat = cv2.resize(heat, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return heat


def _base_rgb(pixels: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` 0-255 -> ``(H, W, 3)`` uint8."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        array = np.rint(np.clip(np.nan_to_num(array.astype(np.float32)), 0, 255)).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        array = array[..., 0] if array.shape[-1] == 1 else array[..., :3]
    if array.ndim == 2 and min(array.shape) >= 1:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    if array.ndim != 3 or min(array.shape[:2]) < 1:
        raise ConfigError(f"pixels must be an image array. Received: shape={array.shape}")
    return np.ascontiguousarray(array)


def overlay(
    pixels: np.ndarray,
    heatmap: np.ndarray,
    alpha: float = DEFAULT_OPACITY,
    colormap: int = COLORMAP,
) -> np.ndarray:
    """Paint a heatmap over the X-ray, transparent where the heat is low.

    Each pixel is blended with its heat colour at :func:`heat_opacity`: untouched where the map
    is below 0.15, ``alpha`` where it is 0.85 or more. Costs a few milliseconds for a
    1024-pixel image (lookup tables and one OpenCV blend; no model call).

    Args:
        pixels: ``(H, W)`` uint8 greyscale (or ``(H, W, 3)`` RGB) image.
        heatmap: ``(h, w)`` map: float in [0, 1] or uint8 0-255; resized to ``(H, W)`` if
            it differs.
        alpha: Maximum opacity of the heatmap, in [0, 1]: 0 shows only the X-ray.
        colormap: An OpenCV colour map; :data:`COLORMAP` (inferno) by default.

    Returns:
        ``(H, W, 3)`` uint8 RGB array.

    Raises:
        ConfigError: ``alpha`` is outside [0, 1], or an array has the wrong shape.
    """
    alpha = _check_opacity(alpha)
    base = _base_rgb(pixels)
    levels = _heat_levels(heatmap, base.shape[:2])
    if alpha == 0.0:
        return base
    # Lookup tables (cv2.LUT) cost a tenth of NumPy indexing on a megapixel image.
    opacity_table = (alpha * _ramp(np.arange(256, dtype=np.float32) / 255.0)).astype(np.float32)
    weights = cv2.LUT(levels, opacity_table)
    coloured = cv2.LUT(cv2.cvtColor(levels, cv2.COLOR_GRAY2RGB), _colour_table(colormap))
    return cv2.blendLinear(coloured, base, weights, 1.0 - weights)


def colour_bar(
    width: int = 256,
    height: int = 16,
    alpha: float = DEFAULT_OPACITY,
    background: int = 128,
    colormap: int = COLORMAP,
) -> np.ndarray:
    """The heatmap's legend: heat 0 (left) to 1 (right), as :func:`overlay` paints it.

    The bar is drawn over a flat grey ``background`` at the same opacities as the overlay, so
    its left end shows the background (low values are transparent) and its right end the
    colour of the strongest regions at the chosen maximum opacity.

    Args:
        width: Width in pixels, 2 to 4096.
        height: Height in pixels, 1 to 512.
        alpha: Maximum opacity, in [0, 1], as given to :func:`overlay`.
        background: Grey level 0-255 under the bar.
        colormap: An OpenCV colour map; :data:`COLORMAP` by default.

    Returns:
        ``(height, width, 3)`` uint8 RGB array.

    Raises:
        ConfigError: A size or ``alpha`` is out of range.
    """
    if not (isinstance(width, int) and 2 <= width <= 4096):
        raise ConfigError(f"width must be an integer from 2 to 4096. Received: width={width!r}")
    if not (isinstance(height, int) and 1 <= height <= 512):
        raise ConfigError(f"height must be an integer from 1 to 512. Received: height={height!r}")
    heat = np.repeat(np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :], height, axis=0)
    grey = np.full((height, width), int(np.clip(background, 0, 255)), np.uint8)
    return overlay(grey, heat, alpha=alpha, colormap=colormap)

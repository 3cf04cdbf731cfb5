"""Depth validity masking and fixed-range colorization of depth (or inverse depth) for viewers.

Colorization uses a fixed range given by the caller, never a per-frame min-max stretch: the same
color means the same distance in every frame (for unitless relative output the caller passes
robust percentiles instead).
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

Colormap = Literal["turbo", "inferno"]

_COLORMAPS: dict[str, int] = {"turbo": cv2.COLORMAP_TURBO, "inferno": cv2.COLORMAP_INFERNO}


def depth_range_mask(
    depth: np.ndarray, min_depth: float, max_depth: float, inplace: bool = False
) -> np.ndarray:
    """Depth as float32 with NaN outside ``[min_depth, max_depth]`` (inclusive) and wherever it is not finite.

    Args:
        depth: HxW depth in meters.
        min_depth, max_depth: the validity range (``0 <= min_depth < max_depth``; ``max_depth`` may be inf).
        inplace: write into ``depth`` (must be a writable float32 array) instead of a copy.
    """
    if not (math.isfinite(min_depth) and 0.0 <= min_depth < max_depth):
        raise ValueError(f"need 0 <= min_depth < max_depth (min finite), got {min_depth}, {max_depth}")
    if inplace:
        if depth.dtype != np.float32 or not depth.flags.writeable:
            raise ValueError("inplace masking needs a writable float32 array")
        out = depth
    else:
        out = np.array(depth, dtype=np.float32, copy=True)
    with np.errstate(invalid="ignore"):  # comparisons with NaN are simply False
        invalid = ~((out >= min_depth) & (out <= max_depth))
    out[invalid] = np.nan
    return out


def robust_range(values: np.ndarray, low_pct: float = 2.0, high_pct: float = 98.0) -> tuple[float, float]:
    """Percentile range of the finite values (for unitless relative output); ``(0, 1)`` when none are finite."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, (low_pct, high_pct))
    return float(low), float(high)


def colorize_depth(
    depth: np.ndarray,
    vmin: float,
    vmax: float,
    colormap: Colormap = "turbo",
    reverse: bool = False,
) -> np.ndarray:
    """HxWx3 uint8 BGR image of ``depth`` mapped linearly from ``[vmin, vmax]`` (clipped); NaN/inf -> black.

    Args:
        depth: HxW values (meters, or unitless inverse depth).
        vmin, vmax: the fixed range; values outside are clipped to the end colors.
        colormap: ``"turbo"`` or ``"inferno"`` (OpenCV's tables).
        reverse: map ``vmin`` to the top of the colormap instead of the bottom. For metric depth
            pass ``True`` so that near is warm/bright; inverse depth (larger = nearer) already is.
    """
    if depth.ndim != 2:
        raise ValueError(f"depth must be a 2-D array, got shape {depth.shape}")
    if not (math.isfinite(vmin) and math.isfinite(vmax)) or vmax < vmin:
        raise ValueError(f"need finite vmin <= vmax, got {vmin}, {vmax}")
    if colormap not in _COLORMAPS:
        raise ValueError(f"colormap must be one of {sorted(_COLORMAPS)}, got {colormap!r}")
    gain = 255.0 / max(vmax - vmin, 1e-12)
    # level = round((d - vmin) * gain), or 255 minus that when reversed, as one multiply-add.
    slope, offset = (-gain, 255.0 + vmin * gain) if reverse else (gain, -vmin * gain)
    scaled = np.multiply(depth, np.float32(slope), dtype=np.float32)
    scaled += np.float32(offset + 0.5)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    with np.errstate(invalid="ignore"):  # NaN levels are blacked out below
        levels = scaled.astype(np.uint8)
    colored = cv2.applyColorMap(levels, _COLORMAPS[colormap])
    colored[~np.isfinite(depth)] = 0
    return colored

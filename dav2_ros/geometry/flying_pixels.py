"""The flying-pixel mask: depth pixels on a jump between a foreground object and the background (numpy only,
vectorized, no ROS).

Monocular depth is predicted on a grid coarser than the image and is smooth across object boundaries, so
the pixels between a foreground object and the background get depths in between: in the cloud they float in
free space as phantom obstacles. ``edge_mask`` finds them as a large *relative* jump to a neighbour::

    |z - z_n| / min(z, z_n) > threshold   for some z_n in the 3x3 neighbourhood

which is ``max3x3(z) > (1 + threshold) * z  or  z > (1 + threshold) * min3x3(z)`` (a min/max filter), then
widens the marked pixels by ``dilation`` pixels (the blurred transition is wider than the 3x3 window sees).
A relative jump is scale-free: the same threshold works at 0.5 m and at 15 m, and for every global scale.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

#: The node's default relative-jump threshold of ``edge_mask`` (parameter ``flying_pixel_threshold``); chosen
#: from benchmarks/bench_depth_filters.py on the TUM RGB-D ground truth (README, "Depth for costmaps").
DEFAULT_EDGE_THRESHOLD = 0.018
#: The node's default dilation in pixels (parameter ``flying_pixel_dilation``).
DEFAULT_EDGE_DILATION = 1


# ------------------------------------------------------------------------------------------- flying pixels
def _window_extreme(values: np.ndarray, radius: int, fill: float, reduce: np.ufunc) -> np.ndarray:
    """``reduce`` (np.maximum / np.minimum) over the (2r+1)x(2r+1) window of every pixel; outside is `fill`."""
    height, width = values.shape
    padded = np.pad(values, radius, mode="constant", constant_values=fill)
    rows = padded[:, 0:width].copy()
    for k in range(1, 2 * radius + 1):
        reduce(rows, padded[:, k:k + width], out=rows)
    out = rows[0:height].copy()
    for k in range(1, 2 * radius + 1):
        reduce(out, rows[k:k + height], out=out)
    return out


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """True where depth is a usable distance: finite and > 0."""
    z = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        return np.isfinite(z) & (z > 0)


def edge_mask(depth: np.ndarray, threshold: float = DEFAULT_EDGE_THRESHOLD,
              dilation: int = DEFAULT_EDGE_DILATION) -> np.ndarray:
    """Which pixels to keep: True off depth discontinuities, False on them (flying pixels) and where depth is
    not finite or not positive.

    Args:
        depth: (H, W) depth (meters, or any positive unit; the test is relative), NaN where invalid.
        threshold: relative jump ``|z - z_n| / min(z, z_n)`` to a 3x3 neighbour above which a pixel is on a
            discontinuity; > 0.
        dilation: widen the discontinuity by this many pixels (a (2d+1)x(2d+1) square); >= 0.

    Returns:
        (H, W) bool, True = keep. Invalid neighbours are ignored (a hole is not a jump).
    """
    z = np.asarray(depth, dtype=np.float32)
    if z.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {z.shape}")
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be > 0, got {threshold}")
    if isinstance(dilation, bool) or int(dilation) != dilation or dilation < 0:
        raise ValueError(f"dilation must be an integer >= 0, got {dilation!r}")
    dilation = int(dilation)
    # In strips of rows (with the rows their windows reach): the same result, computed in the CPU's cache
    # (1280x720 whole: ~12 ms; in strips: a few ms).
    height = z.shape[0]
    halo = 1 + dilation
    keep = np.empty(z.shape, dtype=bool)
    for top in range(0, height, _STRIP_ROWS):
        bottom = min(height, top + _STRIP_ROWS)
        first, last = max(0, top - halo), min(height, bottom + halo)
        keep[top:bottom] = _edge_keep_block(z[first:last], threshold, dilation)[top - first: bottom - first]
    return keep


#: Rows per strip of ``edge_mask``: a strip's few float32 arrays stay in a core's L2 cache at 1280-1920 columns.
_STRIP_ROWS = 48


def _edge_keep_block(z: np.ndarray, threshold: float, dilation: int) -> np.ndarray:
    """``edge_mask`` of one block of rows (its border rows see the block's edge as the image's)."""
    valid = valid_depth(z)
    high = np.where(valid, z, np.float32(0.0))
    low = np.where(valid, z, np.float32(np.inf))
    factor = np.float32(1.0 + threshold)
    near_max = _window_extreme(high, 1, 0.0, np.maximum)
    near_min = _window_extreme(low, 1, np.inf, np.minimum)
    with np.errstate(invalid="ignore", over="ignore"):
        edge = (near_max > high * factor) | (high > near_min * factor)
    edge &= valid
    if dilation:
        edge = _window_extreme(edge, dilation, False, np.logical_or)
    return valid & ~edge


def remove_flying_pixels(depth: np.ndarray, threshold: float = DEFAULT_EDGE_THRESHOLD,
                         dilation: int = DEFAULT_EDGE_DILATION, range_valid: Optional[np.ndarray] = None
                         ) -> tuple[np.ndarray, int, int]:
    """NaN (in place) where ``edge_mask(depth)`` is False; returns (depth, valid pixels before, pixels removed).

    Args:
        range_valid: the pixels valid before this filter when that differs from `depth`'s own validity (the
            mask is computed on `depth` before range masking, so a jump into an out-of-range background is seen).
    """
    keep = edge_mask(depth, threshold, dilation)
    before = valid_depth(depth) if range_valid is None else range_valid
    removed = before & ~keep
    depth[removed] = np.nan
    return depth, int(before.sum()), int(removed.sum())

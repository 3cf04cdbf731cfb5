"""What the node publishes as depth for a raw metric output, for tests that check its values: the validity range
and the flying-pixel filter with the node's defaults (`dav2_ros.geometry.depth_filters`)."""

from __future__ import annotations

import numpy as np

from dav2_ros.geometry.depth_filters import DEFAULT_EDGE_DILATION, DEFAULT_EDGE_THRESHOLD, edge_mask


def published_depth(raw: np.ndarray, min_depth: float = 0.1, max_depth: float = 20.0,
                    threshold: float = DEFAULT_EDGE_THRESHOLD, dilation: int = DEFAULT_EDGE_DILATION) -> np.ndarray:
    """NaN outside [min_depth, max_depth] and where the flying-pixel filter (computed on `raw`) drops the pixel."""
    raw = np.asarray(raw, dtype=np.float32)
    keep = (raw >= min_depth) & (raw <= max_depth)
    if threshold > 0:
        keep &= edge_mask(raw, threshold, dilation)
    return np.where(keep, raw, np.float32(np.nan)).astype(np.float32)


def assert_same_depth(got: np.ndarray, expected: np.ndarray, rtol: float, atol: float,
                      max_flipped: float = 2e-3) -> None:
    """Values equal within rtol/atol where both are valid; the NaN pattern equal but for a few pixels, since a value
    that differs by rounding (another batch split, a compiled graph) can sit on either side of the filter's
    threshold."""
    assert got.shape == expected.shape
    flipped = np.count_nonzero(np.isnan(got) != np.isnan(expected))
    assert flipped <= max_flipped * got.size, f"{flipped} pixels valid in one and NaN in the other"
    both = np.isfinite(got) & np.isfinite(expected)
    assert both.sum() >= 50  # (random weights: the filter with its default threshold keeps only part of a frame)
    np.testing.assert_allclose(got[both], expected[both], rtol=rtol, atol=atol)

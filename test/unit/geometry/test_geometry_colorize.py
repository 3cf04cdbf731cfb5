"""Validity masking and fixed-range colorization of depth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dav2_ros.geometry.colorize import colorize_depth, depth_range_mask, robust_range


def test_range_mask_is_inclusive_and_nans_non_finite():
    depth = np.array([[0.05, 0.1, 5.0], [20.0, 20.01, np.inf], [np.nan, -1.0, 10.0]], dtype=np.float32)
    masked = depth_range_mask(depth, 0.1, 20.0)
    expected_valid = np.array([[False, True, True], [True, False, False], [False, False, True]])
    np.testing.assert_array_equal(np.isfinite(masked), expected_valid)
    np.testing.assert_array_equal(masked[expected_valid], depth[expected_valid])
    assert np.isinf(depth[1, 2]), "the input is left alone unless inplace=True"
    same = depth_range_mask(depth, 0.1, 20.0, inplace=True)
    assert same is depth and np.isnan(depth[1, 2])


def test_range_mask_without_upper_bound():
    depth = np.array([[0.05, 1e6, np.inf]], dtype=np.float32)
    np.testing.assert_array_equal(np.isfinite(depth_range_mask(depth, 0.1, np.inf)), [[False, True, False]])


def test_range_mask_refuses_bad_ranges():
    for lo, hi in ((1.0, 1.0), (-1.0, 2.0), (np.nan, 2.0), (0.0, np.nan), (np.inf, np.inf)):
        with pytest.raises(ValueError):
            depth_range_mask(np.ones((2, 2), np.float32), lo, hi)


def test_colorize_uses_the_fixed_range_not_the_frame():
    depth = np.array([[1.0, 2.0, 3.0, np.nan]], dtype=np.float32)
    colored = colorize_depth(depth, 0.0, 4.0, "turbo")
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(1, 256), cv2.COLORMAP_TURBO)[0]
    np.testing.assert_array_equal(colored[0, 0], lut[64])  # 1/4 of the range -> level 63.75 -> 64
    np.testing.assert_array_equal(colored[0, 2], lut[191])
    np.testing.assert_array_equal(colored[0, 3], [0, 0, 0])
    # The same depth gives the same color whatever else is in the frame.
    other = colorize_depth(np.array([[2.0, 3.9]], dtype=np.float32), 0.0, 4.0, "turbo")
    np.testing.assert_array_equal(other[0, 0], colored[0, 1])


def test_colorize_clips_and_reverses():
    depth = np.array([[-5.0, 0.0, 10.0, 99.0]], dtype=np.float32)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(1, 256), cv2.COLORMAP_INFERNO)[0]
    colored = colorize_depth(depth, 0.0, 10.0, "inferno")
    np.testing.assert_array_equal(colored[0], [lut[0], lut[0], lut[255], lut[255]])
    near_bright = colorize_depth(depth, 0.0, 10.0, "inferno", reverse=True)
    np.testing.assert_array_equal(near_bright[0], [lut[255], lut[255], lut[0], lut[0]])
    assert colored.dtype == np.uint8 and colored.shape == (1, 4, 3)


def test_robust_range_ignores_nan_and_outliers():
    values = np.concatenate([np.linspace(0.0, 1.0, 1000), [1000.0, np.nan]]).astype(np.float32).reshape(2, -1)
    low, high = robust_range(values)
    assert 0.0 < low < 0.05 and 0.95 < high < 1.0
    assert robust_range(np.full((2, 2), np.nan)) == (0.0, 1.0)

"""Back-projection against points computed by hand, with stride, NaN and buffer reuse."""

from __future__ import annotations

import numpy as np
import pytest

from dav2_ros.geometry.backproject import backproject, kept_pixels
from dav2_ros.geometry.intrinsics import Intrinsics

INTR = Intrinsics(fx=500.0, fy=400.0, cx=2.0, cy=1.0, width=5, height=3)


def depth_5x3() -> np.ndarray:
    depth = np.full((3, 5), 1.0, dtype=np.float32)
    depth[2, 4] = 2.0
    depth[1, 2] = np.nan
    depth[0, 3] = 4.0
    return depth


def test_points_by_hand():
    xyz = backproject(depth_5x3(), INTR)
    assert xyz.shape == (3, 5, 3) and xyz.dtype == np.float32
    # u=4, v=2, z=2: x = (4-2)*2/500, y = (2-1)*2/400
    np.testing.assert_allclose(xyz[2, 4], [0.008, 0.005, 2.0], rtol=1e-6)
    # u=0, v=0, z=1: x = -2/500, y = -1/400 (REP 103 optical frame: x right, y down)
    np.testing.assert_allclose(xyz[0, 0], [-0.004, -0.0025, 1.0], rtol=1e-6)
    # u=3, v=0, z=4: x = 1*4/500, y = -1*4/400
    np.testing.assert_allclose(xyz[0, 3], [0.008, -0.01, 4.0], rtol=1e-6)
    # The principal point's ray is the optical axis.
    np.testing.assert_array_equal(xyz[1, 3, 1], 0.0)


def test_nan_depth_gives_nan_point():
    xyz = backproject(depth_5x3(), INTR)
    assert np.isnan(xyz[1, 2]).all()
    assert np.isfinite(np.delete(xyz.reshape(-1, 3), 1 * 5 + 2, axis=0)).all()


def test_stride_keeps_rows_and_columns_0_s_2s_with_their_own_coordinates():
    depth = np.random.default_rng(0).uniform(0.5, 5.0, size=(7, 10)).astype(np.float32)
    intr = Intrinsics(300.0, 320.0, 4.5, 3.0, 10, 7)
    full = backproject(depth, intr)
    strided = backproject(depth, intr, stride=3)
    assert strided.shape == (3, 4, 3) == depth[::3, ::3].shape + (3,)
    np.testing.assert_array_equal(strided, full[::3, ::3])
    rows, cols = kept_pixels(7, 10, 3)
    np.testing.assert_array_equal(rows, [0, 3, 6])
    np.testing.assert_array_equal(cols, [0, 3, 6, 9])
    # u = 9, v = 6 by hand:
    z = depth[6, 9]
    np.testing.assert_allclose(strided[2, 3], [(9 - 4.5) * z / 300.0, (6 - 3.0) * z / 320.0, z], rtol=1e-6)


def test_matches_an_independent_float64_computation():
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.1, 20.0, size=(48, 64)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = np.nan
    intr = Intrinsics(52.3, 51.9, 31.7, 24.2, 64, 48)
    xyz = backproject(depth, intr)
    v, u = np.mgrid[0:48, 0:64]
    z = depth.astype(np.float64)
    expected = np.stack([(u - intr.cx) * z / intr.fx, (v - intr.cy) * z / intr.fy, z], axis=-1)
    np.testing.assert_allclose(xyz, expected, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_out_buffer_is_reused_and_shape_checked():
    depth = depth_5x3()
    padded = np.zeros((3, 5, 4), dtype=np.float32)
    result = backproject(depth, INTR, out=padded[..., :3])
    assert np.shares_memory(result, padded)
    np.testing.assert_array_equal(padded[..., :3], backproject(depth, INTR))
    with pytest.raises(ValueError):
        backproject(depth, INTR, out=np.zeros((3, 5, 3), dtype=np.float64))


def test_refuses_intrinsics_of_another_size_and_bad_stride():
    with pytest.raises(ValueError, match="scaled_to"):
        backproject(np.ones((6, 10), np.float32), INTR)
    with pytest.raises(ValueError, match="stride"):
        backproject(depth_5x3(), INTR, stride=0)

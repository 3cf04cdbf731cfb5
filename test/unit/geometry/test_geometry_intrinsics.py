"""Intrinsics from CameraInfo-like messages: validation reasons, K/P choice, ROI/binning, and rescaling."""

from __future__ import annotations

import array
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from dav2_ros.conversions.errors import InputRejected
from dav2_ros.geometry.intrinsics import Intrinsics, IntrinsicsError, distortion_is_nonzero

TUM_K = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]


def camera_info(k=TUM_K, width=640, height=480, p=None, d=(0.0,) * 5, **extra) -> SimpleNamespace:
    """A CameraInfo look-alike (the decoders only read attributes)."""
    if p is None and k is not None and len(k) == 9:
        p = [k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
    return SimpleNamespace(k=k, p=p, d=d, width=width, height=height, distortion_model="plumb_bob", **extra)


def test_reads_k_from_lists_numpy_and_array_d():
    for k in (TUM_K, np.array(TUM_K), array.array("d", TUM_K)):
        intr = Intrinsics.from_camera_info(camera_info(k=k))
        assert intr == Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
        assert isinstance(intr.fx, float) and isinstance(intr.width, int)


def test_reads_real_rclpy_camera_info():
    msg_module = pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 Python messages) not installed")
    msg = msg_module.CameraInfo(width=640, height=480, k=TUM_K, p=camera_info().p, d=[0.1, 0.0, 0.0, 0.0, 0.0])
    intr = Intrinsics.from_camera_info(msg)
    assert (intr.fx, intr.cx, intr.cy, intr.width) == (525.0, 319.5, 239.5, 640)
    assert distortion_is_nonzero(msg)


def test_source_p_reads_the_projection_matrix():
    p = [600.0, 0.0, 300.0, -30.0, 0.0, 610.0, 250.0, 0.0, 0.0, 0.0, 1.0, 0.0]  # Tx ignored
    intr = Intrinsics.from_camera_info(camera_info(p=p), source="p")
    assert (intr.fx, intr.fy, intr.cx, intr.cy) == (600.0, 610.0, 300.0, 250.0)


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (camera_info(k=[0.0] * 9), "k_zero"),
        (camera_info(k=[math.nan, 0, 319.5, 0, 525, 239.5, 0, 0, 1]), "k_not_finite"),
        (camera_info(k=[525, 0, math.inf, 0, 525, 239.5, 0, 0, 1]), "k_not_finite"),
        (camera_info(k=[-525, 0, 319.5, 0, 525, 239.5, 0, 0, 1]), "negative_focal"),
        (camera_info(k=[525, 0, 319.5, 0, 0, 239.5, 0, 0, 1]), "zero_focal"),
        (camera_info(k=[525, 0, 319.5, 0, 525, 239.5, 0, 0, 0]), "k_malformed"),
        (camera_info(k=[525, 2.0, 319.5, 0, 525, 239.5, 0, 0, 1]), "k_malformed"),
        (camera_info(k=TUM_K[:6]), "k_bad_length"),
        (camera_info(k=None), "k_bad_length"),
        (camera_info(width=0), "bad_size"),
        (camera_info(height=20000), "bad_size"),
        (camera_info(width=640.5), "bad_size"),
        (camera_info(binning_x=-1), "bad_binning"),
        (camera_info(roi=SimpleNamespace(x_offset=600, y_offset=0, width=100, height=100)), "bad_roi"),
    ],
)
def test_invalid_camera_info_is_refused_with_its_reason(msg, reason):
    with pytest.raises(IntrinsicsError) as err:
        Intrinsics.from_camera_info(msg)
    assert err.value.reason == reason
    assert isinstance(err.value, InputRejected) and err.value.detail


def test_p_zero_is_its_own_reason():
    with pytest.raises(IntrinsicsError) as err:
        Intrinsics.from_camera_info(camera_info(p=[0.0] * 12), source="p")
    assert err.value.reason == "p_zero"


def test_distortion_flag():
    assert not distortion_is_nonzero(camera_info(d=(0.0,) * 5))
    assert not distortion_is_nonzero(camera_info(d=[]))
    assert distortion_is_nonzero(camera_info(d=np.array([0.14, -0.28, 0.001, -0.004, 0.0])))
    assert distortion_is_nonzero(camera_info(d=[math.nan]))


def test_scaling_by_hand():
    intr = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
    half = intr.scaled_to(320, 240)
    # fx * 0.5 and (cx + 0.5) * 0.5 - 0.5: the exact image centre stays the exact image centre.
    assert half == Intrinsics(262.5, 262.5, 159.5, 119.5, 320, 240)
    assert intr.scaled_to(640, 480) is intr
    back = half.scaled_to(640, 480)
    assert back.cx == pytest.approx(319.5) and back.fx == pytest.approx(525.0)
    odd = Intrinsics(1276.7, 1274.3, 634.9, 379.8, 1280, 720).scaled_to(98, 55)
    assert odd.fx == pytest.approx(1276.7 * 98 / 1280)
    assert odd.cy == pytest.approx((379.8 + 0.5) * 55 / 720 - 0.5)


def test_aspect_mismatch_is_refused_unless_disabled():
    intr = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
    with pytest.raises(IntrinsicsError) as err:
        intr.scaled_to(640, 360)
    assert err.value.reason == "aspect_mismatch"
    stretched = intr.scaled_to(640, 360, aspect_tolerance=None)
    assert stretched.fy == pytest.approx(525.0 * 0.75) and stretched.fx == 525.0
    # Rounding of an odd target size (1280x720 -> 98x55) is within tolerance.
    Intrinsics(1000.0, 1000.0, 640.0, 360.0, 1280, 720).scaled_to(98, 55)


def test_scaled_intrinsics_project_onto_the_resized_image():
    """A blob rendered at a sub-pixel projection, resized with OpenCV: its centroid is where the scaled K says."""
    full = Intrinsics(500.0, 500.0, 319.5, 239.5, 640, 480)
    point = np.array([-0.31, 0.17, 2.0])
    u0 = full.fx * point[0] / point[2] + full.cx
    v0 = full.fy * point[1] / point[2] + full.cy
    vs, us = np.mgrid[0:480, 0:640].astype(np.float64)
    blob = np.exp(-((us - u0) ** 2 + (vs - v0) ** 2) / (2 * 4.0**2)).astype(np.float32)

    for size, interp in (((320, 240), cv2.INTER_AREA), ((960, 720), cv2.INTER_LINEAR)):
        small = cv2.resize(blob, size, interpolation=interp).astype(np.float64)
        sv, su = np.mgrid[0 : size[1], 0 : size[0]]
        centroid = (float((su * small).sum() / small.sum()), float((sv * small).sum() / small.sum()))
        scaled = full.scaled_to(*size)
        predicted = (scaled.fx * point[0] / point[2] + scaled.cx, scaled.fy * point[1] / point[2] + scaled.cy)
        assert centroid == pytest.approx(predicted, abs=0.02)
        naive_cx = full.cx * size[0] / 640  # image_proc's convention
        naive_u = scaled.fx * point[0] / point[2] + naive_cx
        assert abs(naive_u - centroid[0]) > 0.2


def test_roi_and_binning_give_the_sent_image_intrinsics():
    roi = SimpleNamespace(x_offset=100, y_offset=40, width=400, height=300)
    cropped = Intrinsics.from_camera_info(camera_info(roi=roi))
    assert cropped == Intrinsics(525.0, 525.0, 219.5, 199.5, 400, 300)
    binned = Intrinsics.from_camera_info(camera_info(binning_x=2, binning_y=2))
    assert binned == Intrinsics(262.5, 262.5, 159.5, 119.5, 320, 240)
    zero_roi = SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0)
    assert Intrinsics.from_camera_info(camera_info(roi=zero_roi, binning_x=1)) == Intrinsics(
        525.0, 525.0, 319.5, 239.5, 640, 480
    )


def test_matrices():
    intr = Intrinsics(600.0, 610.0, 300.0, 250.0, 640, 480)
    assert intr.k_matrix() == [600.0, 0.0, 300.0, 0.0, 610.0, 250.0, 0.0, 0.0, 1.0]
    assert intr.p_matrix() == [600.0, 0.0, 300.0, 0.0, 0.0, 610.0, 250.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    with pytest.raises(IntrinsicsError):
        Intrinsics(-1.0, 600.0, 300.0, 250.0, 640, 480)

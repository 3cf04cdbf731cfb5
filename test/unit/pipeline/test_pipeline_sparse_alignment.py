"""The ROS-free sparse alignment (pipeline/sparse_alignment.py) and its pieces: sparse depth images of another
size, cloud decoding and projection, the per-frame conversion with its reasons and fallbacks, and the frame path
(FrameProcessor with `align`) for relative and metric models. Messages are plain objects (duck-typed)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from dav2_ros.conversions.cloud_codec import cloud_msg_to_xyz
from dav2_ros.conversions.errors import InputRejected
from dav2_ros.geometry.intrinsics import Intrinsics
from dav2_ros.geometry.sparse_points import (project_points, rotation_from_quaternion, samples_from_depth_image,
                                             transform_points)
from dav2_ros.pipeline.sparse_alignment import (FrameContext, Measurement, SparseAligner, SparseBuffer,
                                                SparseOptions, SparseRejected)
from estimator_spy import HostOnly

W, H = 64, 48
INTR = Intrinsics(fx=50.0, fy=50.0, cx=31.5, cy=23.5, width=W, height=H)


def header(stamp: float, frame_id: str = "cam") -> SimpleNamespace:
    sec = math.floor(stamp)
    return SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=int(round((stamp - sec) * 1e9))), frame_id=frame_id)


def depth_msg(sparse: np.ndarray, stamp: float = 0.0, frame_id: str = "cam") -> SimpleNamespace:
    h, w = sparse.shape
    return SimpleNamespace(header=header(stamp, frame_id), height=h, width=w, encoding="32FC1", is_bigendian=0,
                           step=4 * w, data=sparse.astype("<f4").tobytes())


def cloud_msg(xyz: np.ndarray, stamp: float = 0.0, frame_id: str = "cam", big_endian: bool = False,
              pad: int = 4) -> SimpleNamespace:
    """x y z float32 at 0/4/8 then `pad` bytes of another field (intensity), unorganized."""
    n = len(xyz)
    step = 12 + pad
    order = ">" if big_endian else "<"
    buffer = np.zeros((n, step), np.uint8)
    buffer[:, :12] = np.ascontiguousarray(xyz, dtype=np.dtype("f4").newbyteorder(order)).view(np.uint8).reshape(n, 12)
    fields = [SimpleNamespace(name=name, offset=4 * i, datatype=7, count=1) for i, name in enumerate("xyz")]
    fields.append(SimpleNamespace(name="intensity", offset=12, datatype=7, count=1))
    return SimpleNamespace(header=header(stamp, frame_id), height=1, width=n, fields=fields, is_bigendian=big_endian,
                           point_step=step, row_step=step * n, data=buffer.tobytes())


def test_half_size_sparse_image_maps_to_the_matching_pixel_centres():
    sparse = np.full((24, 32), np.nan, np.float32)
    sparse[0, 0], sparse[10, 20], sparse[23, 31] = 1.0, 2.0, 3.0
    samples = samples_from_depth_image(sparse, 64, 48)
    # u' = (u + 0.5) * 2 - 0.5 = 2u + 0.5 -> rint: 0 -> 0 (0.5 rounds to even), 20 -> 40 (40.5 -> 40), 31 -> 62
    assert sorted(zip(samples.rows.tolist(), samples.cols.tolist(), samples.depth.tolist())) == [
        (0, 0, 1.0), (20, 40, 2.0), (46, 62, 3.0)]
    with pytest.raises(ValueError, match="not the same aspect ratio"):
        samples_from_depth_image(sparse, 64, 64)


def test_cloud_decoding_projection_and_nearest_point_wins():
    xyz = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 1.0], [1.0, -0.5, 4.0], [0.0, 0.0, -1.0], [np.nan, 0, 1],
                    [100.0, 0.0, 1.0]], np.float32)
    for big_endian in (False, True):
        np.testing.assert_array_equal(cloud_msg_to_xyz(cloud_msg(xyz, big_endian=big_endian)), xyz)
    samples = project_points(xyz, INTR.fx, INTR.fy, INTR.cx, INTR.cy, W, H)
    # (0,0,2) and (0,0,1) share the centre pixel (rint(31.5) = 32, rint(23.5) = 24): the nearer stays; behind
    # the camera, NaN and outside the image are dropped.
    assert sorted(zip(samples.rows.tolist(), samples.cols.tolist(), samples.depth.tolist())) == [
        (17, 44, 4.0), (24, 32, 1.0)]


def test_cloud_refusals():
    good = cloud_msg(np.zeros((3, 3), np.float32))
    no_z = SimpleNamespace(**{**vars(good), "fields": good.fields[:2]})
    with pytest.raises(InputRejected) as error:
        cloud_msg_to_xyz(no_z)
    assert error.value.reason == "no_xyz_fields"
    short = SimpleNamespace(**{**vars(good), "data": good.data[:10]})
    with pytest.raises(InputRejected) as error:
        cloud_msg_to_xyz(short)
    assert error.value.reason == "bad_data_size"


def test_transform_points_with_a_quaternion():
    rotation = rotation_from_quaternion(0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4))  # 90 deg about z
    moved = transform_points(np.array([[1.0, 0.0, 0.0]]), rotation, np.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(moved, [[0.0, 1.0, 1.0]], atol=1e-12)


def test_buffer_gives_the_message_closest_in_stamp():
    buffer = SparseBuffer(length=3)
    assert buffer.closest(1.0) is None
    for stamp in (1.0, 2.0, 3.0, 4.0):
        buffer.add(SimpleNamespace(header=header(stamp)))
    assert buffer.closest(2.2).stamp_s == pytest.approx(2.0)  # 1.0 fell out (length 3)
    assert buffer.closest(0.0).stamp_s == pytest.approx(2.0)


def _relative() -> np.ndarray:
    return np.random.default_rng(0).uniform(0.2, 2.0, (H, W)).astype(np.float32)


def _frame(stamp: float, msg: object, frame_id: str = "cam") -> FrameContext:
    measurement = None if msg is None else Measurement(msg, stamp)
    return FrameContext(stamp, frame_id, W, H, INTR, measurement)


def test_aligner_fits_then_holds_then_falls_back():
    relative = _relative()
    truth = 1.0 / (0.4 * relative + 0.05)
    sparse = np.full((H, W), np.nan, np.float32)
    sparse[::4, ::4] = truth[::4, ::4]
    problems: list[SparseRejected] = []
    aligner = SparseAligner("depth", "sparse_depth", on_problem=problems.append)
    options = SparseOptions(input="depth", hold_s=1.0, min_points=30)
    conversion = aligner.conversion(relative, _frame(10.0, depth_msg(sparse, 10.0)), options, False, (1.0, 0.0))
    assert conversion == pytest.approx((0.4, 0.05), rel=1e-5)
    assert aligner.status().source == "fit" and aligner.status().inliers == sparse[::4, ::4].size
    assert aligner.status().warning() is None

    held = aligner.conversion(relative, _frame(10.5, None), options, False, (1.0, 0.0))  # absent: held fit
    assert held == conversion and aligner.status().source == "held"
    assert aligner.status().fit_age_s == pytest.approx(0.5)
    assert aligner.status().warning() is None  # a held fit is still the sensor's scale: no WARN yet
    fixed = aligner.conversion(relative, _frame(12.0, None), options, False, (1.0, 0.0))  # too old: fixed
    assert fixed == (1.0, 0.0) and aligner.status().source == "fixed"
    assert aligner.status().warning() == "sparse depth not used (absent): relative_scale/relative_shift"
    none = aligner.conversion(relative, _frame(13.0, None), options, False, None)  # nothing given: no depth
    assert none is None and aligner.status().source == "none"
    assert aligner.status().warning() == "sparse depth not used (absent): no metric depth"
    assert dict(aligner.status().items())["sparse.last_problem"] == "absent"
    aligner.conversion(relative, _frame(20.0, depth_msg(sparse, 20.0)), options, False, None)  # fitted again
    assert aligner.status().source == "fit" and aligner.status().warning() is None
    assert dict(aligner.status().items())["sparse.last_problem"] == "none"
    assert [p.reason for p in problems] == ["absent"] * 3
    assert aligner.status().rejected["absent"] == 3


def test_cloud_in_another_frame_needs_a_transform():
    xyz = np.array([[0.1 * i, 0.1 * j, 2.0] for i in range(-4, 4) for j in range(-4, 4)], np.float32)
    refused = SparseAligner("points", "sparse_points", transform_note="tf2_ros is not importable here")
    with pytest.raises(SparseRejected, match="tf2_ros is not importable"):
        refused._samples(_frame(1.0, cloud_msg(xyz, 1.0, "lidar")), SparseOptions(input="points"))

    def shift_by_one_meter(source: str, target: str, stamp: object) -> tuple[np.ndarray, np.ndarray]:
        assert (source, target) == ("lidar", "cam")
        return np.eye(3), np.array([0.0, 0.0, 1.0])

    moved = SparseAligner("points", "sparse_points", transform=shift_by_one_meter)
    samples = moved._samples(_frame(1.0, cloud_msg(xyz, 1.0, "lidar")), SparseOptions(input="points"))
    assert samples.count == 64 and np.allclose(samples.depth, 3.0)


def test_metric_correction_through_the_frame_processor():
    from dav2_ros.pipeline.processing import FrameProcessor, FrameRequest, ProcessingSettings

    depth = np.linspace(1.0, 5.0, W * H, dtype=np.float32).reshape(H, W)

    class MetricStub(HostOnly):  # a metric "network" whose output is a known depth map, 20 % short
        config = SimpleNamespace(model_type="metric", max_depth=20.0)
        last_timings: dict = {}

        def infer(self, image, input_size=518, color_order="rgb"):
            return depth / 1.2

    sparse = np.full((H, W), np.nan, np.float32)
    sparse[::3, ::3] = depth[::3, ::3]
    aligner = SparseAligner("depth", "sparse_depth")
    options = SparseOptions(input="depth", metric_correction=True)
    frame = _frame(1.0, depth_msg(sparse, 1.0))
    processor = FrameProcessor(MetricStub(), ProcessingSettings(input_size=70, max_valid_depth=4.5))
    image = np.zeros((H, W, 3), np.uint8)
    result = processor.process_batch([FrameRequest(image, "rgb", INTR, align=lambda out: aligner.conversion(
        out, frame, options, True))])[0]
    assert aligner.status().scale == pytest.approx(1.2, rel=1e-5)
    expected = np.where(depth <= 4.5, depth, np.nan)  # corrected, then the validity range again
    np.testing.assert_allclose(result.depth, expected, rtol=1e-5, equal_nan=True)
    np.testing.assert_allclose(result.xyz[..., 2], expected, rtol=1e-5, equal_nan=True)


def test_metric_correction_is_the_same_on_the_host_and_the_device_path():
    """The device path (CUDA in the node; here run on the CPU) applies the scale correction after its device work;
    the host path on the masked depth: the same depth and cloud."""
    from dav2_ros.engines.estimator import DepthEstimator
    from dav2_ros.pipeline.processing import FrameProcessor, FrameRequest, ProcessingSettings

    estimator = DepthEstimator.random(encoder="vits", model_type="metric", device="cpu", precision="fp32",
                                      preprocess="fast", backend="torch")
    image = np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8)
    settings = ProcessingSettings(input_size=70, min_depth=0.1, max_valid_depth=20.0, cloud_stride=2)
    outputs = []
    for on_device in (False, True):
        processor = FrameProcessor(estimator, settings, on_device=on_device)
        result = processor.process_batch([FrameRequest(image, "rgb", INTR, align=lambda out: (1.3, 0.0))])[0]
        outputs.append((result.depth.copy(), result.xyz.copy()))
    (host_depth, host_xyz), (device_depth, device_xyz) = outputs
    assert np.isfinite(host_depth).mean() > 0.5
    np.testing.assert_allclose(device_depth, host_depth, rtol=1e-4, equal_nan=True)
    np.testing.assert_allclose(device_xyz, host_xyz, rtol=1e-4, atol=1e-5, equal_nan=True)

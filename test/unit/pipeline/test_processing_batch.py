"""FrameProcessor.process_batch (several cameras in one node): each frame's result equals processing it alone,
frames of one size share one network call, refused frames give their reason in place and spare the others.
Real DepthEstimator (random weights, vits, small input) on the numpy path and on the device path (CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from dav2_ros.conversions.errors import InputRejected
from dav2_ros.geometry.intrinsics import Intrinsics, IntrinsicsError
from dav2_ros.engines.estimator import DepthEstimator
from dav2_ros.pipeline.processing import FrameProcessor, FrameRequest, FrameResult, ProcessingSettings
from estimator_spy import EstimatorSpy

INPUT_SIZE = 70


@pytest.fixture(scope="module")
def estimator() -> DepthEstimator:
    return DepthEstimator.random(encoder="vits", device="cpu", precision="fp32", preprocess="fast", backend="torch")


def frames(count: int, height: int = 48, width: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(count)]


def camera(width: int, height: int, focal: float) -> Intrinsics:
    return Intrinsics(fx=focal, fy=focal, cx=(width - 1) / 2, cy=(height - 1) / 2, width=width, height=height)


@pytest.mark.parametrize("on_device", [False, True], ids=["numpy-path", "device-path"])
def test_a_batch_equals_each_frame_alone(estimator: DepthEstimator, on_device: bool) -> None:
    images = frames(3)
    cameras = [camera(64, 48, 50.0), None, camera(128, 96, 120.0)]  # different intrinsics, one camera without
    settings = ProcessingSettings(input_size=INPUT_SIZE, cloud_stride=2)
    processor = FrameProcessor(estimator, settings, on_device=on_device, max_geometries=2)
    alone = []
    for image, intrinsics in zip(images, cameras):
        result = processor.process(image, "rgb", intrinsics)
        alone.append((result.depth.copy(), None if result.xyz is None else result.xyz.copy()))
    batch = processor.process_batch([FrameRequest(image, "rgb", intrinsics) for image, intrinsics in
                                     zip(images, cameras)])
    for (depth, xyz), result in zip(alone, batch):
        assert isinstance(result, FrameResult) and result.timings["batch_size"] == 3.0
        np.testing.assert_allclose(result.depth, depth, rtol=1e-5, atol=1e-5, equal_nan=True)
        if xyz is None:
            assert result.xyz is None
        else:
            np.testing.assert_allclose(result.xyz, xyz, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert batch[0].depth_intrinsics == cameras[0]
    assert batch[2].depth_intrinsics == camera(128, 96, 120.0).scaled_to(64, 48)
    assert not np.array_equal(batch[0].depth, batch[1].depth, equal_nan=True)  # each frame gets its own depth


def test_frames_of_one_size_and_color_order_share_one_network_call(estimator: DepthEstimator) -> None:
    spy = EstimatorSpy(estimator)
    processor = FrameProcessor(spy, ProcessingSettings(input_size=INPUT_SIZE), on_device=False)
    small, large = frames(2), frames(1, 60, 80, seed=1)
    requests = [FrameRequest(small[0], "rgb"), FrameRequest(large[0], "rgb"), FrameRequest(small[1], "rgb"),
                FrameRequest(small[1], "bgr")]
    results = processor.process_batch(requests)
    assert sorted(spy.batches) == [1, 1, 2]  # the two 64x48 rgb frames together; the 80x60 and the bgr one alone
    assert [r.depth.shape for r in results] == [(48, 64), (60, 80), (48, 64), (48, 64)]
    assert [r.timings["batch_size"] for r in results] == [2.0, 1.0, 2.0, 1.0]


@pytest.mark.parametrize("on_device", [False, True], ids=["numpy-path", "device-path"])
def test_refused_frames_give_their_reason_in_place_and_spare_the_others(estimator: DepthEstimator,
                                                                        on_device: bool) -> None:
    good = frames(2)
    too_long = np.zeros((4, 200, 3), dtype=np.uint8)
    wrong_aspect = camera(64, 64, 50.0)  # square CameraInfo for a 4:3 image
    processor = FrameProcessor(estimator, ProcessingSettings(input_size=INPUT_SIZE), on_device=on_device)
    results = processor.process_batch([FrameRequest(good[0], "rgb", camera(64, 48, 50.0)),
                                       FrameRequest(too_long, "rgb"),
                                       FrameRequest(good[1], "rgb", wrong_aspect)])
    assert isinstance(results[0], FrameResult) and results[0].xyz is not None
    assert isinstance(results[1], InputRejected) and results[1].reason == "bad_aspect"
    assert isinstance(results[2], IntrinsicsError)
    alone = processor.process(good[0], "rgb", camera(64, 48, 50.0))
    np.testing.assert_allclose(results[0].depth, alone.depth, rtol=1e-5, atol=1e-5, equal_nan=True)

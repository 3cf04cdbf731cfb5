"""The on-device frame path (dav2_ros.model.device_frame / device_geometry): checked on the CPU against the numpy
path it replaces (depth_range_mask, geometry.backproject, FrameProcessor); the CUDA-only parts (pinned copies,
CUDA graphs) run where a GPU is present and are skipped, saying so, where none is."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

from dav2_ros.geometry.backproject import backproject
from dav2_ros.geometry.colorize import depth_range_mask
from dav2_ros.geometry.intrinsics import Intrinsics
from dav2_ros.model.device_frame import DeviceFramePipeline
from dav2_ros.model.device_geometry import PinholeRays, backproject_, mask_depth_, rays
from dav2_ros.model.estimator import DepthEstimator
from dav2_ros.pipeline.processing import FrameProcessor, ProcessingSettings

FIXTURE = pathlib.Path(__file__).resolve().parent / "fixtures" / "parity" / "tum_vits_308.npz"
INPUT_SIZE = 98  # the network's smallest sensible size: these tests check plumbing and arithmetic, not the model
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def camera_pair(width: int, height: int) -> tuple[Intrinsics, PinholeRays]:
    intr = Intrinsics(fx=517.3, fy=516.5, cx=318.6, cy=255.3, width=width, height=height)
    return intr, PinholeRays(intr.fx, intr.fy, intr.cx, intr.cy, width, height)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    with np.load(FIXTURE) as z:
        return z["image_bgr"]


@pytest.fixture(scope="module")
def estimator() -> DepthEstimator:
    return DepthEstimator.random(encoder="vits", model_type="metric", max_depth=20.0, device="cpu",
                                 precision="fp32", preprocess="fast")


@pytest.mark.parametrize("stride", [1, 3, 7])
def test_backprojection_on_torch_equals_geometry_backproject(stride: int) -> None:
    rng = np.random.default_rng(stride)
    depth = rng.uniform(0.2, 15.0, size=(61, 83)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = np.nan
    intr, camera = camera_pair(83, 61)
    expected = backproject(depth, intr, stride)
    ray_x, ray_y = rays(camera, stride, torch.device("cpu"))
    out = torch.full((*expected.shape[:2], 4), 7.0)  # a padded point buffer: the 4th float must stay untouched
    backproject_(torch.from_numpy(depth), ray_x, ray_y, stride, out)
    got = out.numpy()
    np.testing.assert_allclose(got[..., :3], expected, rtol=0, atol=1e-5, equal_nan=True)
    assert np.array_equal(np.isnan(got[..., :3]), np.isnan(expected))
    assert np.all(got[..., 3] == 7.0)


def test_backprojection_refuses_a_wrong_output_shape() -> None:
    ray_x, ray_y = rays(PinholeRays(500.0, 500.0, 10.0, 10.0, 20, 20), 2, torch.device("cpu"))
    with pytest.raises(ValueError, match="out must be float32 of shape"):
        backproject_(torch.ones(20, 20), ray_x, ray_y, 2, torch.empty(20, 20, 3))


def test_mask_on_torch_equals_depth_range_mask() -> None:
    depth = np.array([[0.05, 0.1, 5.0], [np.inf, np.nan, 20.0], [20.001, -1.0, 19.99]], dtype=np.float32)
    expected = depth_range_mask(depth, 0.1, 20.0)
    got = mask_depth_(torch.from_numpy(depth.copy()), 0.1, 20.0).numpy()
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="min_depth < max_depth"):
        mask_depth_(torch.zeros(2, 2), 5.0, 1.0)


def test_device_frame_matches_the_numpy_path(frame: np.ndarray, estimator: DepthEstimator) -> None:
    height, width = frame.shape[:2]
    intr, camera = camera_pair(width, height)
    settings = ProcessingSettings(input_size=INPUT_SIZE, min_depth=0.1, max_valid_depth=20.0, cloud_stride=2)
    expected = FrameProcessor(estimator, settings).process(frame, "bgr", intr)
    pipeline = DeviceFramePipeline(estimator, min_depth=0.1, max_depth=20.0)
    got = pipeline.run(frame, INPUT_SIZE, "bgr", camera, stride=2)
    assert got.depth.shape == (height, width) and got.xyz.shape == expected.xyz.shape
    assert np.array_equal(np.isnan(got.depth), np.isnan(expected.depth))
    # Same ops on the same device; the network itself may round differently between two calls (thread split).
    np.testing.assert_allclose(got.depth, expected.depth, rtol=1e-5, atol=1e-5, equal_nan=True)
    np.testing.assert_allclose(got.xyz, expected.xyz, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert set(got.timings) == {"upload", "device", "download"}


def test_device_frame_reuses_its_buffers_for_the_same_geometry(frame: np.ndarray, estimator: DepthEstimator) -> None:
    height, width = frame.shape[:2]
    _, camera = camera_pair(width, height)
    pipeline = DeviceFramePipeline(estimator, min_depth=0.1, max_depth=20.0)
    first = pipeline.run(frame, INPUT_SIZE, "bgr", camera)
    first_depth = first.depth.copy()
    second = pipeline.run(np.ascontiguousarray(frame[::-1]), INPUT_SIZE, "bgr", camera)
    assert np.shares_memory(first.depth, second.depth)  # no per-frame allocation of the outputs
    assert not np.allclose(second.depth, first_depth, equal_nan=True)  # ... and the new frame's values in them
    depth_only = pipeline.run(frame, INPUT_SIZE, "bgr", None)
    assert depth_only.xyz is None
    np.testing.assert_allclose(depth_only.depth, first_depth, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_device_frame_refuses_what_it_cannot_do(frame: np.ndarray, estimator: DepthEstimator) -> None:
    with pytest.raises(ValueError, match="cuda_graphs needs a CUDA device"):
        DeviceFramePipeline(estimator, min_depth=0.1, max_depth=20.0, cuda_graphs=True)
    pipeline = DeviceFramePipeline(estimator, min_depth=0.1, max_depth=20.0)
    _, camera = camera_pair(320, 240)
    with pytest.raises(ValueError, match="camera model is for 320x240"):
        pipeline.run(frame, INPUT_SIZE, "bgr", camera)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_cuda_frame_matches_the_cpu_path(frame: np.ndarray, cuda_graphs: bool) -> None:
    height, width = frame.shape[:2]
    _, camera = camera_pair(width, height)
    cpu = DeviceFramePipeline(DepthEstimator.random(device="cpu", precision="fp32", preprocess="fast"),
                              min_depth=0.1, max_depth=20.0).run(frame, INPUT_SIZE, "bgr", camera)
    cuda_estimator = DepthEstimator.random(device="cuda", precision="fp32", preprocess="fast")
    pipeline = DeviceFramePipeline(cuda_estimator, min_depth=0.1, max_depth=20.0, cuda_graphs=cuda_graphs)
    for _ in range(3):  # the graph is captured on the first call and replayed after
        got = pipeline.run(frame, INPUT_SIZE, "bgr", camera)
    # TF32 may be on for CUDA matmuls: a looser bound than CPU-vs-CPU.
    np.testing.assert_allclose(got.depth, cpu.depth, rtol=2e-3, atol=2e-3, equal_nan=True)
    np.testing.assert_allclose(got.xyz, cpu.xyz, rtol=2e-3, atol=2e-3, equal_nan=True)
    assert pipeline._buffers is not None and pipeline._buffers.host_out.is_pinned()


@pytest.mark.gpu
@needs_cuda
def test_cuda_frame_memory_is_flat_over_frames(frame: np.ndarray) -> None:
    height, width = frame.shape[:2]
    _, camera = camera_pair(width, height)
    pipeline = DeviceFramePipeline(DepthEstimator.random(device="cuda", precision="fp16", preprocess="fast"),
                                   min_depth=0.1, max_depth=20.0)
    for _ in range(5):
        pipeline.run(frame, INPUT_SIZE, "bgr", camera)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(50):
        pipeline.run(frame, INPUT_SIZE, "bgr", camera)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= before


def test_frame_processor_on_device_equals_its_numpy_path(frame: np.ndarray, estimator: DepthEstimator) -> None:
    height, width = frame.shape[:2]
    intr, _ = camera_pair(width, height)
    settings = ProcessingSettings(input_size=INPUT_SIZE, min_depth=0.5, max_valid_depth=12.0, cloud_stride=3)
    numpy_path = FrameProcessor(estimator, settings)
    device_path = FrameProcessor(estimator, settings, on_device=True)
    assert numpy_path._device_path is None  # the CPU default stays the numpy path
    assert device_path._device_path is not None
    expected = numpy_path.process(frame, "bgr", intr)
    got = device_path.process(frame, "bgr", intr, colorize=True)
    np.testing.assert_allclose(got.depth, expected.depth, rtol=1e-5, atol=1e-5, equal_nan=True)
    np.testing.assert_allclose(got.xyz, expected.xyz, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert got.relative is None and got.depth_intrinsics == expected.depth_intrinsics
    assert got.colored is not None and got.colored.shape == (height, width, 3)
    assert {"preprocess", "inference", "postprocess", "depth", "cloud", "total"} <= set(got.timings)
    without_intrinsics = device_path.process(frame, "bgr", None)
    assert without_intrinsics.xyz is None and without_intrinsics.depth_intrinsics is None


def test_frame_processor_keeps_relative_models_on_the_numpy_path(frame: np.ndarray) -> None:
    relative = DepthEstimator.random(encoder="vits", model_type="relative", device="cpu", precision="fp32",
                                     preprocess="fast")
    processor = FrameProcessor(relative, ProcessingSettings(input_size=INPUT_SIZE), on_device=True)
    assert processor._device_path is None
    assert processor.process(frame, "bgr").relative is not None

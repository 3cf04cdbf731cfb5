"""The depth filters in the frame path: the torch twin of `edge_mask` (device path) gives the numpy mask, the host
and device paths of `FrameProcessor` remove the same flying pixels and count them, and a request's temporal filter
changes depth and cloud together. On the CPU (the device path runs there too)."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from dav2_ros.geometry.backproject import backproject
from dav2_ros.geometry.depth_filters import TemporalFilter, edge_mask
from dav2_ros.geometry.intrinsics import Intrinsics
from dav2_ros.engines.torch_runtime.device_geometry import edge_keep
from dav2_ros.engines.estimator import DepthEstimator
from dav2_ros.pipeline.processing import FrameProcessor, FrameRequest, ProcessingSettings

INPUT_SIZE = 98


def random_depth(seed: int, shape: tuple[int, int] = (57, 83)) -> np.ndarray:
    """Blocks of different depths (steps), a gentle slope, noise, NaN and non-positive pixels."""
    rng = np.random.default_rng(seed)
    blocks = rng.uniform(0.5, 12.0, size=(shape[0] // 8 + 1, shape[1] // 8 + 1)).astype(np.float32)
    depth = np.kron(blocks, np.ones((8, 8), dtype=np.float32))[: shape[0], : shape[1]]
    depth *= np.float32(1.0) + np.float32(0.01) * rng.standard_normal(shape).astype(np.float32)
    depth[rng.random(shape) < 0.05] = np.nan
    depth[rng.random(shape) < 0.01] = 0.0
    depth[rng.random(shape) < 0.01] = -2.0
    depth[rng.random(shape) < 0.01] = np.inf
    return depth


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold, dilation", [(0.018, 1), (0.005, 0), (0.1, 3), (0.03, 2)])
def test_the_torch_twin_gives_the_numpy_mask(seed: int, threshold: float, dilation: int) -> None:
    depth = random_depth(seed)
    expected = edge_mask(depth, threshold, dilation)
    got = edge_keep(torch.from_numpy(depth), threshold, dilation).numpy()
    np.testing.assert_array_equal(got, expected)
    batch = np.stack([depth, random_depth(seed + 10)])
    got_batch = edge_keep(torch.from_numpy(batch), threshold, dilation).numpy()
    np.testing.assert_array_equal(got_batch[0], expected)
    np.testing.assert_array_equal(got_batch[1], edge_mask(batch[1], threshold, dilation))


def intrinsics(width: int, height: int) -> Intrinsics:
    return Intrinsics(fx=517.3, fy=516.5, cx=318.6, cy=255.3, width=width, height=height)


def test_host_and_device_paths_remove_the_same_flying_pixels(tum_frame: np.ndarray, fast_vits: DepthEstimator) -> None:
    height, width = tum_frame.shape[:2]
    # A threshold the random network's output crosses often, so that the comparison means something.
    settings = ProcessingSettings(input_size=INPUT_SIZE, min_depth=0.1, max_valid_depth=20.0, cloud_stride=2,
                                  flying_pixel_threshold=0.01, flying_pixel_dilation=1)
    host = FrameProcessor(fast_vits, settings).process(tum_frame, "bgr", intrinsics(width, height))
    device = FrameProcessor(fast_vits, settings, on_device=True).process(tum_frame, "bgr", intrinsics(width, height))
    unfiltered = FrameProcessor(fast_vits, ProcessingSettings(input_size=INPUT_SIZE, min_depth=0.1,
                                                              max_valid_depth=20.0)).process(tum_frame, "bgr")
    assert host.valid_pixels == int(np.isfinite(unfiltered.depth).sum())
    assert 0.01 * host.valid_pixels < host.flying_pixels < 0.9 * host.valid_pixels
    # Same ops on the same data; the network may round differently between two calls, which can flip a pixel
    # that sits exactly on the threshold: allow a handful.
    assert np.count_nonzero(np.isnan(host.depth) != np.isnan(device.depth)) <= 1e-3 * host.depth.size
    assert abs(device.flying_pixels - host.flying_pixels) <= 1e-3 * host.depth.size
    assert device.valid_pixels == host.valid_pixels
    both = np.isfinite(host.depth) & np.isfinite(device.depth)
    np.testing.assert_allclose(device.depth[both], host.depth[both], rtol=1e-5, atol=1e-5)
    # the cloud has NaN points exactly where the depth is NaN
    assert np.array_equal(np.isnan(host.xyz[..., 2]), np.isnan(host.depth[::2, ::2]))
    assert np.array_equal(np.isnan(device.xyz[..., 2]), np.isnan(device.depth[::2, ::2]))


def test_the_filter_off_counts_nothing(tum_frame: np.ndarray, fast_vits: DepthEstimator) -> None:
    settings = ProcessingSettings(input_size=INPUT_SIZE, flying_pixel_threshold=0.0)
    for on_device in (False, True):
        result = FrameProcessor(fast_vits, settings, on_device=on_device).process(tum_frame, "bgr")
        assert result.valid_pixels is None and result.flying_pixels is None


def test_relative_models_with_a_conversion_are_filtered_too(tum_frame: np.ndarray) -> None:
    relative = DepthEstimator.random(encoder="vits", model_type="relative", device="cpu", precision="fp32",
                                     preprocess="fast", backend="torch")
    settings = ProcessingSettings(input_size=INPUT_SIZE, relative_scale=1.0, relative_shift=0.5,
                                  max_valid_depth=None, flying_pixel_threshold=0.002)
    result = FrameProcessor(relative, settings).process(tum_frame, "bgr")
    assert result.flying_pixels is not None and result.flying_pixels > 0
    assert np.count_nonzero(np.isnan(result.depth)) >= result.flying_pixels


@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize("mode", ["scale", "ema"])
def test_the_temporal_filter_moves_depth_and_cloud_together(tum_frame: np.ndarray, fast_vits: DepthEstimator,
                                                            on_device: bool, mode: str) -> None:
    height, width = tum_frame.shape[:2]
    intr = intrinsics(width, height)
    processor = FrameProcessor(fast_vits, ProcessingSettings(input_size=INPUT_SIZE, cloud_stride=3),
                               on_device=on_device)
    temporal = TemporalFilter(mode)
    brighter = np.clip(tum_frame.astype(np.int16) + 12, 0, 255).astype(np.uint8)
    raw = []
    for k, image in enumerate((tum_frame, brighter, tum_frame, brighter)):
        plain = processor.process(image, "bgr", intr)
        raw.append(plain.depth.copy())
        result = processor.process_batch([FrameRequest(image, "bgr", intr, temporal=temporal, stamp=0.1 * k,
                                                       source="cam")])[0]
        assert "temporal" in result.timings
    reference = TemporalFilter(mode)
    expected = [reference.update(depth, stamp=0.1 * k, source="cam") for k, depth in enumerate(raw)][-1]
    np.testing.assert_allclose(result.depth, expected, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert not np.allclose(result.depth, raw[-1], equal_nan=True)  # the filter did something
    np.testing.assert_allclose(result.xyz, backproject(result.depth, intr, 3), rtol=1e-5, atol=1e-5, equal_nan=True)

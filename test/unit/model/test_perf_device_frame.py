"""The on-device frame path (dav2_ros.engines.torch_runtime.device_frame / device_geometry): checked on the CPU against
the numpy path it replaces (depth_range_mask, geometry.backproject, FrameProcessor); the CUDA-only parts (pinned copies,
CUDA graphs) run where a GPU is present and are skipped, saying so, where none is."""

from __future__ import annotations

import itertools
import logging
import time

import numpy as np
import pytest
import torch

from dav2_ros.geometry.backproject import backproject
from dav2_ros.geometry.colorize import depth_range_mask
from dav2_ros.geometry.intrinsics import Intrinsics
from dav2_ros.engines.torch_runtime import device_frame
from dav2_ros.engines.torch_runtime.device_frame import DeviceFramePath
from dav2_ros.engines.torch_runtime.device_geometry import backproject_, mask_depth_, rays
from dav2_ros.engines.estimator import DepthEstimator
from dav2_ros.pipeline.builders import processing_settings, warm_up
from dav2_ros.pipeline.processing import FrameProcessor, FrameRequest, ProcessingSettings
from dav2_ros.pipeline.settings import NodeSettings

INPUT_SIZE = 98  # the network's smallest sensible size: these tests check plumbing and arithmetic, not the model
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def tum_camera(width: int, height: int) -> Intrinsics:
    return Intrinsics(fx=517.3, fy=516.5, cx=318.6, cy=255.3, width=width, height=height)


@pytest.mark.parametrize("stride", [1, 3, 7])
def test_backprojection_on_torch_equals_geometry_backproject(stride: int) -> None:
    rng = np.random.default_rng(stride)
    depth = rng.uniform(0.2, 15.0, size=(61, 83)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = np.nan
    camera = tum_camera(83, 61)
    expected = backproject(depth, camera, stride)
    ray_x, ray_y = rays(camera, stride, torch.device("cpu"))
    out = torch.full((*expected.shape[:2], 4), 7.0)  # a padded point buffer: the 4th float must stay untouched
    backproject_(torch.from_numpy(depth), ray_x, ray_y, stride, out)
    got = out.numpy()
    np.testing.assert_allclose(got[..., :3], expected, rtol=0, atol=1e-5, equal_nan=True)
    assert np.array_equal(np.isnan(got[..., :3]), np.isnan(expected))
    assert np.all(got[..., 3] == 7.0)


def test_backprojection_refuses_a_wrong_output_shape() -> None:
    ray_x, ray_y = rays(Intrinsics(500.0, 500.0, 10.0, 10.0, 20, 20), 2, torch.device("cpu"))
    with pytest.raises(ValueError, match="out must be float32 of shape"):
        backproject_(torch.ones(20, 20), ray_x, ray_y, 2, torch.empty(20, 20, 3))


def test_mask_on_torch_equals_depth_range_mask() -> None:
    depth = np.array([[0.05, 0.1, 5.0], [np.inf, np.nan, 20.0], [20.001, -1.0, 19.99]], dtype=np.float32)
    expected = depth_range_mask(depth, 0.1, 20.0)
    got = mask_depth_(torch.from_numpy(depth.copy()), 0.1, 20.0).numpy()
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="min_depth < max_depth"):
        mask_depth_(torch.zeros(2, 2), 5.0, 1.0)


def test_device_frame_matches_the_numpy_path(tum_frame: np.ndarray, fast_vits: DepthEstimator) -> None:
    height, width = tum_frame.shape[:2]
    camera = tum_camera(width, height)
    settings = ProcessingSettings(input_size=INPUT_SIZE, min_depth=0.1, max_valid_depth=20.0, cloud_stride=2)
    expected = FrameProcessor(fast_vits, settings).process(tum_frame, "bgr", camera)
    pipeline = DeviceFramePath(fast_vits, min_depth=0.1, max_depth=20.0)
    got = pipeline.run(tum_frame, INPUT_SIZE, "bgr", camera, stride=2)
    assert got.depth.shape == (height, width) and got.xyz.shape == expected.xyz.shape
    assert np.array_equal(np.isnan(got.depth), np.isnan(expected.depth))
    # Same ops on the same device; the network itself may round differently between two calls (thread split).
    np.testing.assert_allclose(got.depth, expected.depth, rtol=1e-5, atol=1e-5, equal_nan=True)
    np.testing.assert_allclose(got.xyz, expected.xyz, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert set(got.timings) == {"upload", "device", "download"}


def test_device_frame_reuses_its_buffers_for_the_same_geometry(tum_frame: np.ndarray,
                                                               fast_vits: DepthEstimator) -> None:
    height, width = tum_frame.shape[:2]
    camera = tum_camera(width, height)
    pipeline = DeviceFramePath(fast_vits, min_depth=0.1, max_depth=20.0)
    first = pipeline.run(tum_frame, INPUT_SIZE, "bgr", camera)
    first_depth = first.depth.copy()
    second = pipeline.run(np.ascontiguousarray(tum_frame[::-1]), INPUT_SIZE, "bgr", camera)
    assert np.shares_memory(first.depth, second.depth)  # no per-frame allocation of the outputs
    assert not np.allclose(second.depth, first_depth, equal_nan=True)  # ... and the new frame's values in them
    depth_only = pipeline.run(tum_frame, INPUT_SIZE, "bgr", None)
    assert depth_only.xyz is None
    np.testing.assert_allclose(depth_only.depth, first_depth, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_the_frame_processor_gets_its_path_from_the_estimator(fast_vits: DepthEstimator) -> None:
    settings = ProcessingSettings(input_size=INPUT_SIZE, min_depth=0.2, max_valid_depth=15.0, publish_cloud=False,
                                  flying_pixel_threshold=0.05, flying_pixel_dilation=2)
    path = FrameProcessor(fast_vits, settings, on_device=True, max_geometries=3)._device_path
    assert isinstance(path, DeviceFramePath) and path.estimator is fast_vits
    assert (path.min_depth, path.max_depth, path.cuda_graphs, path.max_geometries, path.points, path.edge_threshold,
            path.edge_dilation) == (0.2, 15.0, False, 3, False, 0.05, 2)


def test_device_frame_refuses_what_it_cannot_do(tum_frame: np.ndarray, fast_vits: DepthEstimator) -> None:
    with pytest.raises(ValueError, match="cuda_graphs needs a CUDA device"):
        DeviceFramePath(fast_vits, min_depth=0.1, max_depth=20.0, cuda_graphs=True)
    pipeline = DeviceFramePath(fast_vits, min_depth=0.1, max_depth=20.0)
    camera = tum_camera(320, 240)
    with pytest.raises(ValueError, match="camera model is for 320x240"):
        pipeline.run(tum_frame, INPUT_SIZE, "bgr", camera)


class GraphLikeCapture:
    """Graph capture on the CPU with a graph's semantics, for the bookkeeping around it (`GraphCapture`): it runs the
    work twice (the warm-up a CUDA capture does), then every replay runs the work recorded at capture -- a later
    frame's own closure is never called, so anything the work took from Python per frame instead of from the static
    buffers (rays, color order) comes out wrong, as it would from a CUDA graph. `fail`: raise it instead."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self, work):
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        work()
        work()
        return work


@pytest.fixture
def count_buffers(monkeypatch) -> list[tuple]:
    """The key of every buffer set the frame path allocates (a subclass of its buffers record that counts them)."""
    created: list[tuple] = []

    class Counted(device_frame._Buffers):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            created.append(self.key)

    monkeypatch.setattr(device_frame, "_Buffers", Counted)
    return created


@pytest.mark.parametrize("publish_cloud", [True, False])
def test_the_first_camera_frame_reuses_what_the_warm_up_built(tum_frame: np.ndarray, fast_vits: DepthEstimator,
                                                              count_buffers: list, publish_cloud: bool) -> None:
    """The warm-up's made-up camera and RGB order vs the camera's real intrinsics and BGR: same geometry, so the first
    real frame allocates nothing (with CUDA graphs it would otherwise evict the warm-up's graph and capture anew)."""
    height, width = tum_frame.shape[:2]
    settings = NodeSettings(input_size=INPUT_SIZE, warmup_width=width, warmup_height=height, cloud_stride=2,
                            publish_cloud=publish_cloud)
    processor = FrameProcessor(fast_vits, processing_settings(settings), on_device=True)
    warm_up(processor, settings)
    assert len(count_buffers) == 1
    intr = tum_camera(width, height)
    got = processor.process(tum_frame, "bgr", intr)
    assert len(count_buffers) == 1, f"the first frame allocated again: {count_buffers}"
    expected = FrameProcessor(fast_vits, processing_settings(settings)).process(tum_frame, "bgr", intr)
    np.testing.assert_allclose(got.depth, expected.depth, rtol=1e-5, atol=1e-5, equal_nan=True)
    if publish_cloud:
        np.testing.assert_allclose(got.xyz, expected.xyz, rtol=1e-5, atol=1e-5, equal_nan=True)
    else:
        assert got.xyz is None and expected.xyz is None


def three_cameras(frame: np.ndarray) -> tuple[list[np.ndarray], list[Intrinsics]]:
    """Three cameras of one size: different pixels and different intrinsics each."""
    height, width = frame.shape[:2]
    images = [frame, np.ascontiguousarray(frame[::-1]), np.ascontiguousarray(frame[:, ::-1])]
    intrinsics = [Intrinsics(fx=fx, fy=fx * 1.01, cx=cx, cy=height / 2 + d, width=width, height=height)
                  for fx, cx, d in ((517.3, 318.6, -4.0), (380.0, 300.0, 7.5), (640.0, 330.0, 0.0))]
    return images, intrinsics


def test_batched_cameras_in_any_order_and_subset_keep_one_geometry_per_batch_size(
        tum_frame: np.ndarray, fast_vits: DepthEstimator, count_buffers: list) -> None:
    """1-3 cameras waiting together, in every order and subset (15 arrangements, twice), some without a CameraInfo:
    3 buffer sets (batch sizes 1, 2, 3) fit the 3 kept (one per camera), none is evicted, and every camera's points
    are back-projected with its own intrinsics (its rays copied into the batch slot it had this time)."""
    stride = 3
    images, intrinsics = three_cameras(tum_frame)
    settings = ProcessingSettings(input_size=INPUT_SIZE, min_depth=0.1, max_valid_depth=20.0, cloud_stride=stride)
    processor = FrameProcessor(fast_vits, settings, on_device=True, max_geometries=3)
    reference = [FrameProcessor(fast_vits, settings).process(image, "bgr", None).depth for image in images]
    arrangements = [order for size in (1, 2, 3) for subset in itertools.combinations(range(3), size)
                    for order in itertools.permutations(subset)]
    assert len(arrangements) == 15
    for round_ in range(2):
        for n, order in enumerate(arrangements):
            without_info = order[-1] if (n + round_) % 4 == 0 else None  # now and then a camera has no CameraInfo
            requests = [FrameRequest(images[i], "bgr", None if i == without_info else intrinsics[i]) for i in order]
            for i, outcome in zip(order, processor.process_batch(requests)):
                np.testing.assert_allclose(outcome.depth, reference[i], rtol=1e-4, atol=1e-4, equal_nan=True)
                if i == without_info:
                    assert outcome.xyz is None
                    continue
                expected = backproject(outcome.depth, intrinsics[i], stride)
                np.testing.assert_allclose(outcome.xyz, expected, rtol=0, atol=1e-5, equal_nan=True)
        assert sorted(key[0] for key in count_buffers) == [1, 2, 3], count_buffers
    pipeline = processor._device_path
    assert (pipeline.geometries_created, pipeline.geometries_evicted) == (3, 0)


def test_one_graph_per_geometry_serves_every_camera_and_color_order(tum_frame: np.ndarray,
                                                                    fast_vits: DepthEstimator) -> None:
    """With (graph-like) captures: the warm-up's capture serves later frames of other cameras and color orders, a
    batch of two is captured once whatever its order, and every replay equals the eager result."""
    height, width = tum_frame.shape[:2]
    images, cameras = three_cameras(tum_frame)
    capture = GraphLikeCapture()
    graphs = DeviceFramePath(fast_vits, min_depth=0.1, max_depth=20.0, cuda_graphs=True, max_geometries=2,
                             capture=capture)
    eager = DeviceFramePath(fast_vits, min_depth=0.1, max_depth=20.0, max_geometries=2)
    gray = np.full_like(tum_frame, 128)
    made_up = Intrinsics(0.8 * width, 0.8 * width, (width - 1) / 2, (height - 1) / 2, width, height)
    graphs.run(gray, INPUT_SIZE, "rgb", made_up)  # what the start-up warm-up does
    runs = [([0], "bgr"), ([1], "rgb"), ([0, 1], "bgr"), ([1, 0], "bgr"), ([2, 0], "rgb"), ([2], "bgr")]
    for indices, order in runs:
        batch = [images[i] for i in indices]
        frame_cameras = [cameras[i] for i in indices]
        got = [(f.depth.copy(), f.xyz.copy()) for f in graphs.run_batch(batch, INPUT_SIZE, order, frame_cameras)]
        for (depth, xyz), expected in zip(got, eager.run_batch(batch, INPUT_SIZE, order, frame_cameras)):
            np.testing.assert_allclose(depth, expected.depth, rtol=1e-5, atol=1e-5, equal_nan=True)
            np.testing.assert_allclose(xyz, expected.xyz, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert capture.calls == graphs.captures == 2  # batch of one (at the warm-up) and batch of two
    assert (graphs.geometries_created, graphs.geometries_evicted) == (2, 0)


def test_a_failed_capture_runs_that_geometry_eagerly_and_says_so_once(tum_frame: np.ndarray, fast_vits: DepthEstimator,
                                                                      caplog) -> None:
    height, width = tum_frame.shape[:2]
    camera = tum_camera(width, height)
    capture = GraphLikeCapture(fail=RuntimeError("CUDA error: operation not permitted when stream is capturing"))
    graphs = DeviceFramePath(fast_vits, min_depth=0.1, max_depth=20.0, cuda_graphs=True, capture=capture)
    eager = DeviceFramePath(fast_vits, min_depth=0.1, max_depth=20.0)
    caplog.set_level(logging.WARNING, logger="dav2_ros.model")
    for image in (tum_frame, np.ascontiguousarray(tum_frame[::-1]), tum_frame):
        got = graphs.run(image, INPUT_SIZE, "bgr", camera)
        expected = eager.run(image, INPUT_SIZE, "bgr", camera)
        np.testing.assert_allclose(got.depth, expected.depth, rtol=1e-5, atol=1e-5, equal_nan=True)
        np.testing.assert_allclose(got.xyz, expected.xyz, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert capture.calls == 1 and graphs.captures == 0  # not retried on every frame
    said = [r.getMessage() for r in caplog.records if "CUDA graph capture failed" in r.getMessage()]
    assert len(said) == 1 and "operation not permitted" in said[0] and "without a CUDA graph" in said[0], said
    # another geometry still gets its graph
    capture.fail = None
    graphs.run_batch([tum_frame, tum_frame], INPUT_SIZE, "bgr", [camera, None])
    assert capture.calls == 2 and graphs.captures == 1


@pytest.fixture
def ieee_fp32():
    """fp32 CUDA convolutions and matmuls in full fp32 for a comparison with the CPU: cuDNN uses TF32 by default
    (torch.backends.cudnn.allow_tf32 is True), which keeps 10 mantissa bits and moves depths by ~1e-3 relative.
    The legacy flags only (mixing them with the fp32_precision API is refused by torch)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_cuda_frame_matches_the_cpu_path(tum_frame: np.ndarray, cuda_graphs: bool, ieee_fp32) -> None:
    height, width = tum_frame.shape[:2]
    camera = tum_camera(width, height)
    cpu = DeviceFramePath(DepthEstimator.random(device="cpu", precision="fp32", preprocess="fast", backend="torch"),
                          min_depth=0.1, max_depth=20.0).run(tum_frame, INPUT_SIZE, "bgr", camera)
    cuda_estimator = DepthEstimator.random(device="cuda", precision="fp32", preprocess="fast")
    pipeline = DeviceFramePath(cuda_estimator, min_depth=0.1, max_depth=20.0, cuda_graphs=cuda_graphs)
    for _ in range(3):  # the graph is captured on the first call and replayed after
        got = pipeline.run(tum_frame, INPUT_SIZE, "bgr", camera)
    # TF32 off (ieee_fp32): what remains is the kernels' other summation orders and the GPU's bicubic, ~1e-4.
    np.testing.assert_allclose(got.depth, cpu.depth, rtol=1e-3, atol=1e-3, equal_nan=True)
    np.testing.assert_allclose(got.xyz, cpu.xyz, rtol=1e-3, atol=1e-3, equal_nan=True)
    assert pipeline._buffers and all(b.host_in.is_pinned() and b.host_out.is_pinned()
                                     for b in pipeline._buffers.values())
    assert pipeline.captures == (1 if cuda_graphs else 0)


@pytest.mark.gpu
@needs_cuda
def test_cuda_graph_is_captured_once_per_geometry_over_1000_frames(tum_frame: np.ndarray) -> None:
    """One camera for 1,000 frames, then two batched cameras in both orders: one capture per batch size, and every
    replay gives its own frame's depth (not the first frame's)."""
    height, width = tum_frame.shape[:2]
    camera = tum_camera(width, height)
    other = Intrinsics(600.0, 600.0, width / 2, height / 2, width, height)
    estimator = DepthEstimator.random(device="cuda", precision="fp16", preprocess="fast")
    graphs = DeviceFramePath(estimator, min_depth=0.1, max_depth=20.0, cuda_graphs=True, max_geometries=2)
    eager = DeviceFramePath(estimator, min_depth=0.1, max_depth=20.0, max_geometries=2)
    flipped = np.ascontiguousarray(tum_frame[:, ::-1])
    for i in range(1000):
        image = tum_frame if i % 2 == 0 else flipped
        got = graphs.run(image, INPUT_SIZE, "bgr", camera)
        if i in (0, 1, 2, 999):
            expected = eager.run(image, INPUT_SIZE, "bgr", camera)
            np.testing.assert_allclose(got.depth, expected.depth, rtol=1e-3, atol=1e-3, equal_nan=True)
    for order in ([tum_frame, flipped], [flipped, tum_frame]):
        got = [f.depth.copy() for f in graphs.run_batch(order, INPUT_SIZE, "bgr", [camera, other])]
        expected = [f.depth for f in eager.run_batch(order, INPUT_SIZE, "bgr", [camera, other])]
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-3, equal_nan=True)
    assert graphs.captures == 2 and graphs.geometries_created == 2 and graphs.geometries_evicted == 0


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs (cuda:1 with CUDA graphs)")
def test_cuda_graphs_on_a_second_gpu_capture_the_work_there(tum_frame: np.ndarray, recwarn) -> None:
    """On cuda:1 the capture must use a stream of cuda:1 (torch.cuda.graph's default stream belongs to the device
    current at its first use, cuda:0 on a fresh thread): else the graph is empty and every replay repeats the
    first frame's output."""
    height, width = tum_frame.shape[:2]
    camera = tum_camera(width, height)
    estimator = DepthEstimator.random(device="cuda:1", precision="fp16", preprocess="fast")
    graphs = DeviceFramePath(estimator, min_depth=0.1, max_depth=20.0, cuda_graphs=True)
    eager = DeviceFramePath(estimator, min_depth=0.1, max_depth=20.0)
    for image in (tum_frame, np.ascontiguousarray(tum_frame[::-1]), np.ascontiguousarray(tum_frame[:, ::-1])):
        got = graphs.run(image, INPUT_SIZE, "bgr", camera).depth.copy()
        np.testing.assert_allclose(got, eager.run(image, INPUT_SIZE, "bgr", camera).depth, rtol=1e-3, atol=1e-3,
                                   equal_nan=True)
    assert not [w for w in recwarn if "CUDA Graph is empty" in str(w.message)]
    assert graphs.captures == 1


@pytest.mark.gpu
@needs_cuda
def test_cuda_timings_come_from_the_stream_with_one_wait(tum_frame: np.ndarray, monkeypatch) -> None:
    """"upload" is read after the copy is done (CUDA events), and a frame waits for the device once (no
    torch.cuda.synchronize between its stages)."""
    height, width = tum_frame.shape[:2]
    camera = tum_camera(width, height)
    pipeline = DeviceFramePath(DepthEstimator.random(device="cuda", precision="fp16", preprocess="fast"),
                               min_depth=0.1, max_depth=20.0)
    pipeline.run(tum_frame, INPUT_SIZE, "bgr", camera)
    synchronizes = []
    real = torch.cuda.synchronize
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: (synchronizes.append(a), real(*a, **k))[1])
    start = time.perf_counter()
    got = pipeline.run(tum_frame, INPUT_SIZE, "bgr", camera)
    wall = time.perf_counter() - start
    assert synchronizes == []
    assert all(got.timings[k] > 0.0 for k in ("upload", "device", "download"))
    assert sum(got.timings.values()) <= wall


@pytest.mark.gpu
@needs_cuda
def test_cuda_frame_memory_is_flat_over_frames(tum_frame: np.ndarray) -> None:
    height, width = tum_frame.shape[:2]
    camera = tum_camera(width, height)
    pipeline = DeviceFramePath(DepthEstimator.random(device="cuda", precision="fp16", preprocess="fast"),
                               min_depth=0.1, max_depth=20.0)
    for _ in range(5):
        pipeline.run(tum_frame, INPUT_SIZE, "bgr", camera)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(50):
        pipeline.run(tum_frame, INPUT_SIZE, "bgr", camera)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= before


def test_frame_processor_on_device_equals_its_numpy_path(tum_frame: np.ndarray, fast_vits: DepthEstimator) -> None:
    height, width = tum_frame.shape[:2]
    intr = tum_camera(width, height)
    settings = ProcessingSettings(input_size=INPUT_SIZE, min_depth=0.5, max_valid_depth=12.0, cloud_stride=3)
    numpy_path = FrameProcessor(fast_vits, settings)
    device_path = FrameProcessor(fast_vits, settings, on_device=True)
    assert numpy_path._device_path is None  # the CPU default stays the numpy path
    assert device_path._device_path is not None
    expected = numpy_path.process(tum_frame, "bgr", intr)
    got = device_path.process(tum_frame, "bgr", intr, colorize=True)
    np.testing.assert_allclose(got.depth, expected.depth, rtol=1e-5, atol=1e-5, equal_nan=True)
    np.testing.assert_allclose(got.xyz, expected.xyz, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert got.relative is None and got.depth_intrinsics == expected.depth_intrinsics
    assert got.colored is not None and got.colored.shape == (height, width, 3)
    assert {"preprocess", "inference", "postprocess", "depth", "cloud", "total"} <= set(got.timings)
    without_intrinsics = device_path.process(tum_frame, "bgr", None)
    assert without_intrinsics.xyz is None and without_intrinsics.depth_intrinsics is None


def test_frame_processor_keeps_relative_models_on_the_numpy_path(tum_frame: np.ndarray) -> None:
    relative = DepthEstimator.random(encoder="vits", model_type="relative", device="cpu", precision="fp32",
                                     preprocess="fast", backend="torch")
    processor = FrameProcessor(relative, ProcessingSettings(input_size=INPUT_SIZE), on_device=True)
    assert processor._device_path is None
    assert processor.process(tum_frame, "bgr").relative is not None


# Every option the host path has, on the device path (issue 17: `publish_cloud: false` crashed the CUDA node in its
# warm-up because the device path built ray views for a cloud nobody asked for).
DEVICE_PATH_OPTIONS = {
    "cloud off": dict(publish_cloud=False),
    "stride 2": dict(cloud_stride=2),
    "stride 5": dict(cloud_stride=5),
    "flying-pixel filter off": dict(flying_pixel_threshold=0.0),
    "filter off, cloud off": dict(flying_pixel_threshold=0.0, publish_cloud=False),
    "filter dilated, stride 3": dict(flying_pixel_threshold=0.05, flying_pixel_dilation=2, cloud_stride=3),
    "range 1-6 m": dict(min_depth=1.0, max_valid_depth=6.0),
}


@pytest.mark.parametrize("options", DEVICE_PATH_OPTIONS.values(), ids=DEVICE_PATH_OPTIONS.keys())
@pytest.mark.parametrize("temporal_mode", [None, "scale", "ema"])
def test_every_host_path_option_gives_the_same_frame_on_the_device_path(
        tum_frame: np.ndarray, fast_vits: DepthEstimator, options: dict, temporal_mode: str | None) -> None:
    from dav2_ros.geometry.depth_filters import TemporalFilter

    height, width = tum_frame.shape[:2]
    intr = tum_camera(width, height)
    settings = ProcessingSettings(input_size=INPUT_SIZE, **options)
    host = FrameProcessor(fast_vits, settings)
    device = FrameProcessor(fast_vits, settings, on_device=True)
    filters = {path: TemporalFilter(temporal_mode) if temporal_mode else None for path in ("host", "device")}
    for step in range(2):  # the second frame runs on reused buffers (and a warmed temporal filter)
        image = tum_frame if step == 0 else np.ascontiguousarray(tum_frame[:, ::-1])
        expected = host.process(image, "bgr", intr, temporal=filters["host"], stamp=float(step))
        got = device.process(image, "bgr", intr, temporal=filters["device"], stamp=float(step))
        np.testing.assert_allclose(got.depth, expected.depth, rtol=1e-5, atol=1e-5, equal_nan=True)
        assert np.array_equal(np.isnan(got.depth), np.isnan(expected.depth))
        if settings.publish_cloud:
            stride = settings.cloud_stride
            assert got.xyz.shape == expected.xyz.shape == (-(-height // stride), -(-width // stride), 3)
            np.testing.assert_allclose(got.xyz, expected.xyz, rtol=1e-5, atol=1e-5, equal_nan=True)
        else:
            assert got.xyz is None and expected.xyz is None
        assert (got.valid_pixels, got.flying_pixels) == (expected.valid_pixels, expected.flying_pixels)


@pytest.mark.parametrize("layout", ["compact", "depth_image_proc"])
@pytest.mark.parametrize("stride", [1, 2])
def test_device_and_host_points_give_the_same_cloud_bytes(layout: str, stride: int) -> None:
    """For one depth map, the device path's points and the numpy path's points make byte-identical messages."""
    from dav2_ros.conversions.pointcloud import pointcloud_fields

    rng = np.random.default_rng(7)
    depth = rng.uniform(0.2, 15.0, size=(48, 64)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = np.nan
    camera = tum_camera(64, 48)
    host = backproject(depth, camera, stride)
    ray_x, ray_y = rays(camera, stride, torch.device("cpu"))
    device = torch.empty(host.shape, dtype=torch.float32)
    backproject_(torch.from_numpy(depth), ray_x, ray_y, stride, device)
    bgr = rng.integers(0, 256, size=host.shape, dtype=np.uint8)
    for colors in (None, bgr):
        assert bytes(pointcloud_fields(device.numpy(), colors, layout)["data"]) == \
            bytes(pointcloud_fields(host, colors, layout)["data"])

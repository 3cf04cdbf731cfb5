"""What the node builds at start from its settings (ROS-free): torch.compile on request, the frame processor
(CUDA graphs refused with a warning off CUDA, buffers for every camera) and the warm-up through the whole frame
path at the configured frame size, with a full batch when several cameras are compiled or graphed."""

from __future__ import annotations

import logging

import pytest

from dav2_ros.engines.estimator import DepthEstimator
from dav2_ros.pipeline.builders import (StartupError, batches_cameras, build_processor, prepare_estimator, warm_up,
                                        warn_unusable)
from dav2_ros.pipeline.settings import NodeSettings
from dav2_ros.pipeline.processing import FrameProcessor, ProcessingSettings
from estimator_spy import EstimatorSpy


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelname, record.getMessage()))


@pytest.fixture
def logger():
    log = logging.getLogger("dav2_ros.test_node_startup")
    recorder = Recorder()
    log.addHandler(recorder)
    log.recorder = recorder
    yield log
    log.removeHandler(recorder)


@pytest.fixture(scope="module")
def estimator() -> DepthEstimator:
    return DepthEstimator.random(encoder="vits", device="cpu", precision="fp32", backend="torch")


def test_cuda_graphs_off_cuda_is_ignored_with_a_warning(estimator, logger):
    settings = NodeSettings(cuda_graphs=True, cameras=("a", "b", "c"))
    processor = build_processor(estimator, settings)
    assert processor._device_path is None  # CPU: the numpy path, no graphs
    warn_unusable(estimator, settings, logger)
    assert ("WARNING", "cuda_graphs is true but the model runs on cpu: CUDA graphs need a CUDA device, "
            "ignoring it") in logger.recorder.lines


def test_device_path_keeps_buffers_for_every_camera(estimator, logger):
    processor = FrameProcessor(estimator, ProcessingSettings(), on_device=True, max_geometries=3)
    assert processor._device_path.max_geometries == 3


@pytest.mark.parametrize("settings, expected", [
    (NodeSettings(input_size=70, warmup_width=96, warmup_height=72), [(1, (72, 96), 70)]),
    (NodeSettings(input_size=70, cameras=("a", "b")), [(1, (480, 640), 70)]),  # eager: one frame warms it up
    (NodeSettings(input_size=70, cameras=("a", "b"), compile="default", batch_cameras="on", warmup_width=64,
                  warmup_height=48),
     [(1, (48, 64), 70), (2, (48, 64), 70)]),  # compiled: the batch shape compiles at start too
    (NodeSettings(input_size=70, cameras=("a", "b"), compile="default", batch_cameras="off", warmup_width=64,
                  warmup_height=48), [(1, (48, 64), 70)]),
    # inductor's CUDA graphs (reduce-overhead, max-autotune) are recorded on a function's second call: two frames
    (NodeSettings(input_size=70, compile="reduce-overhead", warmup_width=64, warmup_height=48),
     [(1, (48, 64), 70)] * 2),
    (NodeSettings(input_size=70, cameras=("a", "b"), compile="max-autotune", batch_cameras="on", warmup_width=64,
                  warmup_height=48), [(1, (48, 64), 70)] * 2 + [(2, (48, 64), 70)] * 2),
])
def test_warm_up_runs_the_frame_path_at_the_configured_size(estimator, settings, expected):
    spy = EstimatorSpy(estimator)
    processor = FrameProcessor(spy, ProcessingSettings(input_size=settings.input_size))
    assert warm_up(processor, settings) > 0.0
    assert spy.calls == expected


def test_compile_is_set_up_on_request_and_refused_where_it_cannot_apply(logger):
    eager = DepthEstimator.random(encoder="vits", device="cpu", precision="fp32", backend="torch")
    prepare_estimator(eager, NodeSettings(), logger)
    assert not getattr(eager.model, "_dav2_compiled", False)
    prepare_estimator(eager, NodeSettings(compile="default"), logger)  # compiles lazily, on the warm-up
    assert eager.model._dav2_compiled
    int8 = DepthEstimator.random(encoder="vits", device="cpu", precision="int8", backend="torch")
    # NodeSettings(...) skips the combination checks that from_params (the node's parameters) makes first
    with pytest.raises(StartupError, match="compile default: torch.compile does not apply to precision 'int8'"):
        prepare_estimator(int8, NodeSettings(compile="default"), logger)


@pytest.mark.parametrize("choice, device, expected", [
    ("auto", "cpu", False),  # measured no faster on the CPU (benchmarks/bench_cameras.py)
    ("auto", "cuda", True),
    ("on", "cpu", True),
    ("off", "cuda", False),
])
def test_batch_cameras_auto_batches_on_cuda_only(choice, device, expected):
    import torch

    assert batches_cameras(NodeSettings(batch_cameras=choice), torch.device(device)) is expected

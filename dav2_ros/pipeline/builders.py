"""Builds what the node runs once at start from its settings: the estimator (real weights, or random
ones only when allowed, loudly; torch.compile'd on request), the `FrameProcessor` with its per-frame
`ProcessingSettings`, and the warm-up; failures become one-line `StartupError`s that `main` prints
before exiting with code 1."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dav2_ros.geometry.intrinsics import Intrinsics
from dav2_ros.pipeline.settings import NodeSettings
from dav2_ros.pipeline.frames import FrameRequest
from dav2_ros.pipeline.processing import FrameProcessor, ProcessingSettings
from dav2_ros.weights.cache import WeightsNotFound, resolve_checkpoint

if TYPE_CHECKING:
    from dav2_ros.engines.estimator import DepthEstimator

# Focal length of the warm-up frame's pinhole camera, in image widths (any value exercises the cloud path).
_WARMUP_FOCAL_WIDTHS = 0.8
# torch.compile modes whose inductor options turn on its CUDA graphs (torch._inductor.list_mode_options).
_COMPILE_MODES_WITH_CUDA_GRAPHS = ("reduce-overhead", "max-autotune")
# OpenMP threads spin at every barrier by default; on a robot computer that shares its cores with drivers and
# other nodes, a spinning thread waits out whole scheduler slices for a descheduled partner. Measured on 2 cores
# with other work running (benchmarks/bench_threads.py, docs/performance.md): 2 threads, passive ~1.6x faster
# than 2 threads, active. A user-set OMP_WAIT_POLICY wins.
OMP_WAIT_POLICY = "PASSIVE"


class StartupError(RuntimeError):
    """The node cannot start; the message is the one line the user needs (what, where, how to fix)."""


def build_estimator(settings: NodeSettings, logger: Any) -> tuple[DepthEstimator, str]:
    """The estimator for `settings` and where its weights came from: the checkpoint (an explicit path,
    or the official file in the weights folder), or random weights when none is found and
    `allow_random_weights` is true.

    Raises:
        StartupError: no checkpoint (naming the file and the download command), a checkpoint that
            does not load or fit the encoder, or a device/precision that this machine lacks.
    """
    # torch is imported only once the weights are known to exist: a missing file is reported in a
    # second, not after the seconds torch takes to load.
    prepare_cpu_runtime()
    from dav2_ros.engines.base import EngineOptions

    common = dict(encoder=settings.encoder, model_type=settings.model_type, max_depth=settings.max_depth,
                  device=settings.device, precision=settings.precision, preprocess=settings.preprocess,
                  backend=engine_choice(settings),
                  engine_options=EngineOptions(num_threads=settings.num_threads,
                                               max_shapes=max(2, 2 * len(settings.cameras)),
                                               onnx_providers=tuple(settings.onnxruntime_providers),
                                               onnx_model=Path(settings.onnxruntime_model).expanduser()
                                               if settings.onnxruntime_model.strip() else None))
    try:
        path = resolve_checkpoint(settings.checkpoint, settings.encoder, settings.model_type, settings.dataset,
                                  settings.weights_dir)
    except WeightsNotFound as error:
        if not settings.allow_random_weights:
            raise StartupError(f"{error} (or set allow_random_weights:=true for a demo on random weights)") from None
        from dav2_ros.engines.estimator import DepthEstimator

        apply_num_threads(settings.num_threads)
        logger.warning(
            f"!!! RANDOM WEIGHTS: {error}. allow_random_weights is true, so the model runs on random "
            f"{settings.encoder} weights: its depth and point cloud are MEANINGLESS (demos and tests only) !!!")
        try:
            return DepthEstimator.random(**common), "RANDOM weights (allow_random_weights)"
        except ValueError as value_error:
            raise StartupError(str(value_error)) from None
    from dav2_ros.weights.checkpoint import CheckpointError
    from dav2_ros.engines.estimator import DepthEstimator

    apply_num_threads(settings.num_threads)
    try:
        return DepthEstimator.from_checkpoint(path, **common), str(path)
    except CheckpointError as error:
        raise StartupError(str(error)) from None  # names the file and the cause
    except ValueError as error:  # device / precision / preprocess this machine cannot do
        raise StartupError(str(error)) from None


def engine_choice(settings: NodeSettings) -> str:
    """The `backend` to ask for: as set, except that `auto` means torch when torch.compile is asked for (a torch
    feature; `check_consistency` refuses it with another explicit backend)."""
    if settings.backend == "auto" and settings.compile != "off":
        return "torch"
    return settings.backend


def prepare_estimator(estimator: DepthEstimator, settings: NodeSettings, logger: Any) -> None:
    """torch.compile the network when `compile` asks for it (it compiles during the warm-up).

    Raises:
        StartupError: compile cannot apply (int8 precision, a torch without torch.compile).
    """
    if settings.compile == "off":
        return
    from dav2_ros.engines.torch_runtime.compile import compile_estimator

    try:
        compile_estimator(estimator, settings.compile)
    except (ValueError, RuntimeError) as error:
        raise StartupError(f"compile {settings.compile}: {error}") from None
    logger.info(f"compile {settings.compile}: the network compiles during the warm-up (minutes on a small CPU); "
                "frames of another size than warmup_width x warmup_height compile once more when they first come")


def build_processor(estimator: DepthEstimator, settings: NodeSettings) -> FrameProcessor:
    """The frame processor for `settings`: the device path on CUDA, with CUDA graphs on request (only there; see
    `warn_unusable`), keeping buffers for as many frame geometries as there are cameras."""
    cuda = estimator.device.type == "cuda" and estimator.backend == "torch"
    return FrameProcessor(estimator, processing_settings(settings), cuda_graphs=settings.cuda_graphs and cuda,
                          max_geometries=max(1, len(settings.cameras)))


def warn_unusable(estimator: DepthEstimator, settings: NodeSettings, logger: Any) -> None:
    """Say once at start which requested options this machine ignores (CUDA graphs without CUDA)."""
    if settings.cuda_graphs and estimator.device.type != "cuda":
        logger.warning(f"cuda_graphs is true but the model runs on {estimator.device}: CUDA graphs need a CUDA "
                       "device, ignoring it")


def batches_cameras(settings: NodeSettings, device: Any) -> bool:
    """Whether waiting frames of several cameras go through the network as one batch: `batch_cameras` on, or
    auto on CUDA (on the CPU a batch measured no faster than its frames one by one, and delays the first).
    `device`: the estimator's (a torch.device)."""
    if settings.batch_cameras == "auto":
        return device.type == "cuda"
    return settings.batch_cameras == "on"


def warm_up_runs(settings: NodeSettings) -> int:
    """Frames of each batch size the warm-up runs: two when torch.compile records its own CUDA graphs
    (reduce-overhead and max-autotune: inductor's cudagraph trees run a function eagerly on its first call and
    record the graph on the second), else one."""
    return 2 if settings.compile in _COMPILE_MODES_WITH_CUDA_GRAPHS else 1


def warm_up(processor: FrameProcessor, settings: NodeSettings) -> float:
    """Run a gray warmup_width x warmup_height frame through the whole frame path (network, cloud, and with
    several batched cameras a full batch too; twice each when compile records CUDA graphs, `warm_up_runs`), so
    the first camera frame pays no one-time setup: allocator growth, cuDNN/oneDNN choices, torch.compile, CUDA
    graph capture. The frame path keys its buffers and graphs on the frame size, input size, batch size and
    stride, not on the camera model or color order, so the camera's frames reuse what the warm-up built. Call it
    on the thread that will run the frames (cuBLAS/cuDNN handles are per thread). Returns seconds."""
    width, height = settings.warmup_width, settings.warmup_height
    image = np.full((height, width, 3), 128, dtype=np.uint8)
    focal = _WARMUP_FOCAL_WIDTHS * width
    camera = Intrinsics(fx=focal, fy=focal, cx=(width - 1) / 2, cy=(height - 1) / 2, width=width, height=height)
    batch_sizes = [1]
    if batches_cameras(settings, processor.estimator.device) and len(settings.cameras) > 1 and (
            settings.compile != "off" or settings.cuda_graphs):
        batch_sizes.append(len(settings.cameras))  # compiled graphs and CUDA graphs are per batch size
    start = time.perf_counter()
    for size in batch_sizes:
        for _ in range(warm_up_runs(settings)):
            for outcome in processor.process_batch([FrameRequest(image, "rgb", camera)] * size):
                if isinstance(outcome, Exception):
                    raise StartupError(f"warm-up with a {width}x{height} frame failed: {outcome}")
    return time.perf_counter() - start


def describe_estimator(estimator: DepthEstimator, settings: NodeSettings, source: str) -> dict[str, str]:
    """The model facts that diagnostics report (string values)."""
    config = estimator.config
    return {
        "model": f"Depth Anything V2 {config.encoder} {config.model_type}"
                 + (f" (max_depth {config.max_depth:g} m)" if config.model_type == "metric" else ""),
        "weights": source,
        "device": str(estimator.device),
        "backend": estimator.backend,
        "engine": estimator.describe_engine(),
        "precision": estimator.precision,
        "preprocess": estimator.preprocess,
        "input_size": str(settings.input_size),
    }


def processing_settings(settings: NodeSettings) -> ProcessingSettings:
    """The per-frame options of `FrameProcessor` from the node's settings (the preview is asked per frame)."""
    return ProcessingSettings(
        input_size=settings.input_size,
        min_depth=settings.min_depth,
        max_valid_depth=settings.max_valid_depth,
        publish_cloud=settings.publish_cloud,
        cloud_stride=settings.cloud_stride,
        colorize=False,
        relative_scale=settings.relative_scale if settings.relative_scale > 0.0 else None,
        relative_shift=settings.relative_shift,
        flying_pixel_threshold=settings.flying_pixel_threshold,
        flying_pixel_dilation=settings.flying_pixel_dilation,
    )


def prepare_cpu_runtime() -> bool:
    """Before torch (and its OpenMP runtime) loads: let idle OpenMP threads sleep rather than spin, unless the
    user set OMP_WAIT_POLICY. Returns whether the setting can still take effect (False once torch is loaded)."""
    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
    return True


def apply_num_threads(num_threads: int) -> None:
    """CPU threads for inference (0 = leave torch's default, all cores)."""
    if num_threads <= 0:
        return
    import torch  # the one torch call outside dav2_ros.model (it has no thread setting); local like the others

    torch.set_num_threads(min(num_threads, os.cpu_count() or num_threads))

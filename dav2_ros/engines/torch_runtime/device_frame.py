"""A whole frame on the estimator's device: one upload of the uint8 image, one download of depth + points.

On CUDA this is the GPU path: the camera image goes through a reused pinned staging buffer to a reused device
buffer; channel order, bicubic resize and normalization (the "fast" preprocessing), the network (in the
estimator's precision), the bilinear upsampling to the frame, the validity mask and the back-projection all run
on the GPU into one flat device buffer, which comes back with a single copy into a reused pinned host buffer.
Optionally the device work is captured once per geometry as a CUDA graph and replayed (no per-kernel launch cost).

Buffers and graphs are keyed on what fixes the device work: the batch size, the frame size, the input size and
(with points) the cloud stride. What changes from frame to frame without changing the work -- the pixels, each
camera's rays, the color order -- is copied into static buffers before the work runs or its graph replays. So one
graph serves every camera model, color order and arrangement of batched cameras of that geometry, and the graph the
start-up warm-up captured serves the first camera frame.

The same code runs on the CPU (device "cpu": no copies at all), which is how the tests check it against the
numpy path (`FrameProcessor` + `geometry.backproject`); the graph bookkeeping is checked there too, with an
injected `capture`. Buffers are reused: the arrays of a `DeviceFrame` stay valid until the next `run` call only --
copy them to keep them (building the messages copies them anyway).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from dav2_ros.engines.torch_runtime.device_geometry import backproject_, edge_keep, mask_depth_
from dav2_ros.geometry.backproject import ray_arrays
from dav2_ros.engines.preprocess import (IMAGENET_MEAN, IMAGENET_STD, ColorOrder, check_color_order, check_image,
                                         network_size)
from dav2_ros.geometry.intrinsics import Intrinsics

LOG = logging.getLogger("dav2_ros.model")

#: How a graph is made: ``capture(work)`` does whatever warm-up it needs, records `work` and returns the function
#: that replays it (without calling `work` again). The default records a CUDA graph on the pipeline's device; tests
#: inject their own to exercise the bookkeeping (keys, eviction, the fallback after a failed capture) on the CPU.
GraphCapture = Callable[[Callable[[], None]], Callable[[], None]]

# Eager runs on a side stream before a capture, as torch's CUDA graph documentation requires (cuDNN/cuBLAS choices,
# lazy initialization and the allocator's first blocks happen outside the graph).
_CAPTURE_WARMUP_RUNS = 2
# The input's channels in the network's RGB order, per color order (an index the work reads, not a Python branch,
# so a graph captured for one color order is right for the other).
_CHANNELS: dict[str, tuple[int, int, int]] = {"rgb": (0, 1, 2), "bgr": (2, 1, 0)}
_UNSET = object()  # a ray slot that holds no camera's rays yet


@dataclass
class DeviceFrame:
    """One frame's outputs, as numpy views of reused host buffers (valid until the next `run`).

    Attributes:
        depth: (H, W) float32 meters, NaN outside the validity range.
        xyz: (ceil(H/s), ceil(W/s), 3) float32 points, NaN where depth is NaN; None without a camera model.
        timings: seconds: "upload" (staging + copy to the device), "device" (preprocess + network + upsample + mask
            + cloud), "download". On CUDA measured with events on the stream (when the device did each stage, with
            one synchronize per batch), on the CPU with the host clock.
        valid_pixels, flying_pixels: with the flying-pixel filter on, the pixels valid before it and those it
            removed (both 0 with it off).
    """

    depth: np.ndarray
    xyz: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)
    valid_pixels: int = 0
    flying_pixels: int = 0


@dataclass
class _Buffers:
    """The reused tensors of one geometry (B frames of H x W at one input size and stride) and its graph."""

    key: tuple
    host_in: torch.Tensor  # (B, H, W, 3) uint8, pinned on CUDA
    device_in: torch.Tensor  # (B, H, W, 3) uint8 on the device (the same tensor as host_in on the CPU)
    device_out: torch.Tensor  # flat float32: B*H*W depth values, h*w*3 point coordinates per frame, then per frame
    #                           the flying-pixel filter's (valid, removed) pixel counts
    host_out: torch.Tensor  # the same on the host (pinned on CUDA; the same tensor as device_out on the CPU)
    host_rays: torch.Tensor  # flat float32: per frame its ray_x (w values) then ray_y (h); pinned on CUDA
    device_rays: torch.Tensor  # the same on the device (the same tensor as host_rays on the CPU)
    ray_views: list[tuple[torch.Tensor, torch.Tensor]]  # per frame: (ray_x (1, w), ray_y (h, 1)) in device_rays
    channels: torch.Tensor  # (3,) int64 on the device: the input's channels in RGB order
    layout: list[tuple[int, tuple[int, int, int] | None]]  # per frame: its points' offset in device_out, shape
    cameras: list  # per frame: the camera whose rays its slot holds (None: NaN rays; _UNSET: none yet)
    color_order: str | None = None  # what `channels` holds
    replay: Callable[[], None] | None = None  # the captured graph's replay


class _StageClock:
    """Marks between the stages of one run and the seconds between them once it is done: CUDA events on the
    device's current stream (a stage's time is when the device ran it; one synchronize, at the end), or the host
    clock on the CPU (where a stage is done when its call returns)."""

    def __init__(self, device: torch.device) -> None:
        self._stream = torch.cuda.current_stream(device) if device.type == "cuda" else None
        self._marks: list = []

    def mark(self) -> None:
        if self._stream is None:
            self._marks.append(time.perf_counter())
        else:
            event = torch.cuda.Event(enable_timing=True)
            event.record(self._stream)
            self._marks.append(event)

    def wait(self) -> list[float]:
        """Wait for the last mark (everything queued before it is done); the seconds between successive marks."""
        pairs = list(zip(self._marks, self._marks[1:]))
        if self._stream is None:
            return [end - begin for begin, end in pairs]
        self._marks[-1].synchronize()
        return [begin.elapsed_time(end) / 1e3 for begin, end in pairs]


class DeviceFramePath:
    """Runs `estimator.model` and the per-frame geometry on `estimator.device`, reusing buffers (and graphs) per
    geometry.

    Args:
        estimator: a `DepthEstimator` (its model, device and precision are used; not its preprocessing mode:
            this path always uses the fast, on-device preprocessing).
        min_depth, max_depth: the validity range in meters; depth outside it becomes NaN.
        edge_threshold, edge_dilation: the flying-pixel filter (`device_geometry.edge_keep`, the twin of
            `geometry.depth_filters.edge_mask`), computed on the upsampled depth before the range mask; 0: off.
        cuda_graphs: capture the device work per geometry as a CUDA graph and replay it (CUDA only; the first frame
            of each geometry pays warm-up + capture). A capture that fails is said once and that geometry runs
            without a graph from then on.
        max_geometries: how many geometries keep their buffers (and graphs) at once, least recently used dropped
            first: 1 for one camera, the number of cameras for a multi-camera node (n cameras of one size batched
            in any order and subset give n geometries: batch sizes 1..n).
        points: compute points (the buffers hold a cloud per frame); False: depth only, every camera must be None.
        capture: how a graph is made (`GraphCapture`); default: a CUDA graph on the estimator's device. Giving one
            allows `cuda_graphs` off CUDA (tests).

    Attributes:
        geometries_created, geometries_evicted: buffer sets allocated, and dropped to stay within max_geometries.
        captures: graphs captured (one per geometry while it stays cached).
    """

    def __init__(self, estimator, *, min_depth: float, max_depth: float, cuda_graphs: bool = False,
                 max_geometries: int = 1, points: bool = True, capture: GraphCapture | None = None,
                 edge_threshold: float = 0.0, edge_dilation: int = 0) -> None:
        self.estimator = estimator
        self.device: torch.device = estimator.device
        if cuda_graphs and self.device.type != "cuda" and capture is None:
            raise ValueError(f"cuda_graphs needs a CUDA device, the estimator runs on {self.device}")
        if not (np.isfinite(min_depth) and 0.0 <= min_depth < max_depth):
            raise ValueError(f"need 0 <= min_depth < max_depth (min finite), got {min_depth}, {max_depth}")
        if max_geometries < 1:
            raise ValueError(f"max_geometries must be >= 1, got {max_geometries}")
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.edge_threshold, self.edge_dilation = float(edge_threshold), int(edge_dilation)
        self.cuda_graphs = cuda_graphs
        self.points = points
        self.max_geometries = max_geometries
        cuda = self.device.type == "cuda"
        self._autocast = (not cuda) and estimator.precision == "bf16"
        self._dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(estimator.precision, torch.float32) \
            if cuda else torch.float32
        with self._on_device():
            std, mean = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
            self._scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(self.device)
            self._shift = (mean / std).view(1, 3, 1, 1).to(self.device)
            self._channel_orders = {order: torch.tensor(index, dtype=torch.int64, device=self.device)
                                    for order, index in _CHANNELS.items()}
        self._capture: GraphCapture = capture if capture is not None else self._capture_cuda_graph
        self._side_stream: torch.cuda.Stream | None = None
        self._buffers: OrderedDict[tuple, _Buffers] = OrderedDict()
        self._eager: set[tuple] = set()  # geometries whose capture failed: they run without a graph
        self.geometries_created = 0
        self.geometries_evicted = 0
        self.captures = 0

    # ------------------------------------------------------------------------------------------ public
    def run(self, image: np.ndarray, input_size: int, color_order: ColorOrder, camera: Intrinsics | None,
            stride: int = 1) -> DeviceFrame:
        """Depth (and points when `camera` is given) for one uint8 HxWx3 image.

        Args:
            image: the decoded frame (any strides).
            input_size: the network's resolution (shorter side), as `DepthEstimator.infer`.
            color_order: "rgb" or "bgr".
            camera: intrinsics of this image's size, or None for depth only.
            stride: keep every stride-th row and column of the cloud.
        """
        return self.run_batch([image], input_size, color_order, [camera], stride)[0]

    def run_batch(self, images: Sequence[np.ndarray], input_size: int, color_order: ColorOrder,
                  cameras: Sequence[Intrinsics | None], stride: int = 1) -> list[DeviceFrame]:
        """`run` for several images of one size (several cameras): one upload, one network call on the batch, one
        download. Each camera model may differ (or be None). The timings of every frame are the batch's."""
        if not images or len(images) != len(cameras):
            raise ValueError(f"need one camera (or None) per image, got {len(images)} images, {len(cameras)} cameras")
        for image in images:
            check_image(image)
        check_color_order(color_order)
        height, width = images[0].shape[:2]
        if any(image.shape[:2] != (height, width) for image in images):
            raise ValueError("a batch needs images of one size: "
                             + ", ".join(f"{i.shape[1]}x{i.shape[0]}" for i in images))
        for camera in cameras:
            if camera is not None and (camera.width, camera.height) != (width, height):
                raise ValueError(f"camera model is for {camera.width}x{camera.height}, the image is {width}x{height}")
        if not self.points and any(camera is not None for camera in cameras):
            raise ValueError("this pipeline computes no points (points=False): give None for every camera")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        key = (len(images), height, width, input_size, stride if self.points else 0)
        buffers = self._buffers_for(key, height, width, stride)

        def device_work() -> None:  # everything it reads per frame is in `buffers` (a graph replays it as is)
            self._device_work(buffers, height, width, input_size, stride)

        with self._on_device():
            clock = _StageClock(self.device)
            start = time.perf_counter()
            host_in = buffers.host_in.numpy()
            for i, image in enumerate(images):
                host_in[i] = image  # the only host-side copy of each image (any strides, read-only ok)
            staged = time.perf_counter()
            clock.mark()
            self._load_frame_constants(buffers, color_order, cameras, stride)
            if buffers.device_in is not buffers.host_in:
                buffers.device_in.copy_(buffers.host_in, non_blocking=True)
            clock.mark()
            self._run_device_work(buffers, device_work)
            clock.mark()
            if buffers.host_out is not buffers.device_out:
                buffers.host_out.copy_(buffers.device_out, non_blocking=True)
            clock.mark()
            upload, device, download = clock.wait()  # the one synchronize: host_out holds this batch after it
        timings = dict(upload=(staged - start) + upload, device=device, download=download)
        flat = buffers.host_out.numpy()
        depths = flat[: len(images) * height * width].reshape(len(images), height, width)
        frames = []
        counts = flat[flat.size - 2 * len(images):].reshape(len(images), 2)
        for i, (offset, shape) in enumerate(buffers.layout):
            xyz = None
            if shape is not None and cameras[i] is not None:
                xyz = flat[offset: offset + int(np.prod(shape))].reshape(shape)
            valid, removed = (int(c) for c in counts[i]) if self.edge_threshold > 0 else (0, 0)
            frames.append(DeviceFrame(depths[i], xyz, dict(timings), valid, removed))
        return frames

    # ------------------------------------------------------------------------------------------ internals
    def _on_device(self) -> contextlib.AbstractContextManager:
        """`torch.cuda.device(self.device)` on CUDA: streams, events and graph captures default to the current
        device, which is device 0 on a fresh thread whatever device the model is on."""
        return torch.cuda.device(self.device) if self.device.type == "cuda" else contextlib.nullcontext()

    def _ray_shape(self, height: int, width: int, stride: int) -> tuple[int, int]:
        """(rows, columns) the cloud keeps at this stride."""
        return -(-height // stride), -(-width // stride)

    def _buffers_for(self, key: tuple, height: int, width: int, stride: int) -> _Buffers:
        """The buffers for this geometry: reused while it comes back, the least recently used geometry's
        buffers (and graph) dropped beyond `max_geometries`, so memory stays that of a few geometries."""
        if key in self._buffers:
            self._buffers.move_to_end(key)
            return self._buffers[key]
        while len(self._buffers) >= self.max_geometries:
            self._buffers.popitem(last=False)  # free before allocating more
            self.geometries_evicted += 1
        cuda = self.device.type == "cuda"
        batch = key[0]
        rows, cols = self._ray_shape(height, width, stride)
        per_frame = rows * cols * 3 if self.points else 0
        offset = batch * height * width
        layout = [(offset + i * per_frame, (rows, cols, 3) if self.points else None) for i in range(batch)]
        with self._on_device():
            host_in = torch.empty((batch, height, width, 3), dtype=torch.uint8, pin_memory=cuda)
            device_in = torch.empty_like(host_in, device=self.device) if cuda else host_in
            # + the flying-pixel filter's two counts per frame at the end
            device_out = torch.empty(offset + batch * per_frame + 2 * batch, dtype=torch.float32, device=self.device)
            host_out = torch.empty(device_out.shape, dtype=torch.float32, pin_memory=True) if cuda else device_out
            ray_length = rows + cols if self.points else 0
            host_rays = torch.full((batch * ray_length,), float("nan"), dtype=torch.float32, pin_memory=cuda)
            device_rays = host_rays.to(self.device) if cuda else host_rays
            channels = self._channel_orders["rgb"].clone()
        ray_views = [(device_rays[i * ray_length: i * ray_length + cols].view(1, cols),
                      device_rays[i * ray_length + cols: (i + 1) * ray_length].view(rows, 1))
                     for i in range(batch)] if self.points else []  # depth only: no rays, no points
        self._buffers[key] = _Buffers(key, host_in, device_in, device_out, host_out, host_rays, device_rays,
                                      ray_views, channels, layout, [_UNSET] * batch, color_order="rgb")
        self.geometries_created += 1
        return self._buffers[key]

    def _load_frame_constants(self, buffers: _Buffers, color_order: ColorOrder,
                              cameras: Sequence[Intrinsics | None], stride: int) -> None:
        """Copy into the static buffers what this batch has of its own: the channel order and each frame's rays
        (only what differs from the last batch of this geometry; queued on the stream before the work)."""
        if buffers.color_order != color_order:
            buffers.channels.copy_(self._channel_orders[color_order], non_blocking=True)
            buffers.color_order = color_order
        if not self.points:
            return
        host = buffers.host_rays.numpy()
        length = host.size // len(cameras)
        changed = False
        for i, camera in enumerate(cameras):
            if buffers.cameras[i] == camera:
                continue
            slot = host[i * length: (i + 1) * length]
            if camera is None:
                slot[:] = np.nan  # no camera: its points are computed but never returned
            else:
                ray_x, ray_y = ray_arrays(camera, stride)
                slot[: ray_x.size] = ray_x.ravel()
                slot[ray_x.size:] = ray_y.ravel()
            buffers.cameras[i] = camera
            changed = True
        if changed and buffers.device_rays is not buffers.host_rays:
            buffers.device_rays.copy_(buffers.host_rays, non_blocking=True)

    @torch.inference_mode()
    def _device_work(self, buffers: _Buffers, height: int, width: int, input_size: int, stride: int) -> None:
        """uint8 frames on the device -> masked depth and points in `buffers.device_out` (no host sync). Reads
        nothing per frame but the static buffers, so a graph of it is right for any frame of this geometry."""
        batch = buffers.device_in.shape[0]
        rows, cols = network_size(height, width, input_size)
        x = buffers.device_in.permute(0, 3, 1, 2).index_select(1, buffers.channels)
        x = F.interpolate(x.float(), size=(rows, cols), mode="bicubic", align_corners=False, antialias=False)
        x = x.mul_(self._scale).sub_(self._shift).to(self._dtype)
        with torch.autocast("cpu", dtype=torch.bfloat16) if self._autocast else contextlib.nullcontext():
            net = self.estimator.model(x)
        depth = buffers.device_out[: batch * height * width].view(batch, 1, height, width)
        depth.copy_(F.interpolate(net[:, None].float(), (height, width), mode="bilinear", align_corners=True))
        depth = depth.view(batch, height, width)
        keep = edge_keep(depth, self.edge_threshold, self.edge_dilation) if self.edge_threshold > 0 else None
        mask_depth_(depth, self.min_depth, self.max_depth)
        if keep is not None:
            counts = buffers.device_out[buffers.device_out.numel() - 2 * batch:].view(batch, 2)
            valid = ~torch.isnan(depth)
            removed = valid & ~keep
            counts[:, 0].copy_(valid.sum(dim=(1, 2)))
            counts[:, 1].copy_(removed.sum(dim=(1, 2)))
            depth.masked_fill_(removed, float("nan"))
        for i, ((offset, shape), (ray_x, ray_y)) in enumerate(zip(buffers.layout, buffers.ray_views)):
            if shape is not None:
                points = buffers.device_out[offset: offset + shape[0] * shape[1] * 3].view(shape)
                backproject_(depth[i], ray_x, ray_y, stride, points)

    def _run_device_work(self, buffers: _Buffers, work: Callable[[], None]) -> None:
        """`work` directly, or through this geometry's graph (captured on its first frame). A failed capture is said
        once; the geometry then runs without a graph, this frame included."""
        if not self.cuda_graphs or buffers.key in self._eager:
            work()
            return
        if buffers.replay is None:
            try:
                buffers.replay = self._capture(work)
            except Exception as error:  # noqa: BLE001 -- any capture failure: the frame still runs, eagerly
                self._eager.add(buffers.key)
                batch, height, width, input_size, _ = buffers.key
                LOG.warning("CUDA graph capture failed for %d frame(s) of %dx%d at input_size %d (%s: %s); running "
                            "this geometry without a CUDA graph from now on (same results, more launch overhead)",
                            batch, width, height, input_size, type(error).__name__, str(error).strip()[:300])
                work()
                return
            self.captures += 1
        buffers.replay()

    def _capture_cuda_graph(self, work: Callable[[], None]) -> Callable[[], None]:
        """The default `GraphCapture`: warm-up runs on a side stream, then a CUDA graph of `work` recorded on that
        stream of this pipeline's device (torch.cuda.graph's own default stream belongs to whichever device was
        current when it was first used). Runs inside `_on_device`."""
        if self._side_stream is None:
            self._side_stream = torch.cuda.Stream(self.device)
        side = self._side_stream
        current = torch.cuda.current_stream(self.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            for _ in range(_CAPTURE_WARMUP_RUNS):
                work()
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=side):
                work()
        finally:
            torch.cuda.set_stream(current)  # torch leaves the capture stream current when capture_end raises
        return graph.replay

"""A whole frame on the estimator's device: one upload of the uint8 image, one download of depth + points.

On CUDA this is the GPU path: the camera image goes through a reused pinned staging buffer to a reused device
buffer; channel order, bicubic resize and normalization (the "fast" preprocessing), the network (in the
estimator's precision), the bilinear upsampling to the frame, the validity mask and the back-projection all run
on the GPU into one flat device buffer, which comes back with a single copy into a reused pinned host buffer.
Optionally the device work is captured once per shape as a CUDA graph and replayed (no per-kernel launch cost).

The same code runs on the CPU (device "cpu": no copies at all), which is how the tests check it against the
numpy path (`FrameProcessor` + `geometry.backproject`). Buffers are reused: the arrays of a `DeviceFrame` stay
valid until the next `run` call only -- copy them to keep them (building the messages copies them anyway).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .device_geometry import PinholeRays, backproject_, mask_depth_, rays
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, ColorOrder, check_color_order, check_image, network_size


@dataclass
class DeviceFrame:
    """One frame's outputs, as numpy views of reused host buffers (valid until the next `run`).

    Attributes:
        depth: (H, W) float32 meters, NaN outside the validity range.
        xyz: (ceil(H/s), ceil(W/s), 3) float32 points, NaN where depth is NaN; None without a camera model.
        timings: seconds: "upload", "device" (preprocess + network + upsample + mask + cloud), "download".
    """

    depth: np.ndarray
    xyz: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Buffers:
    """The reused tensors for one frame geometry."""

    key: tuple
    host_in: torch.Tensor  # (H, W, 3) uint8, pinned on CUDA
    device_in: torch.Tensor  # (H, W, 3) uint8 on the device (the same tensor as host_in on the CPU)
    device_out: torch.Tensor  # flat float32: H*W depth values, then h*w*3 point coordinates
    host_out: torch.Tensor  # the same on the host (pinned on CUDA; the same tensor as device_out on the CPU)
    ray_x: torch.Tensor | None
    ray_y: torch.Tensor | None
    graph: torch.cuda.CUDAGraph | None = None


class DeviceFramePipeline:
    """Runs `estimator.model` and the per-frame geometry on `estimator.device`, reusing buffers keyed by shape.

    Args:
        estimator: a `DepthEstimator` (its model, device and precision are used; not its preprocessing mode:
            this path always uses the fast, on-device preprocessing).
        min_depth, max_depth: the validity range in meters; depth outside it becomes NaN.
        cuda_graphs: capture the device work per frame geometry as a CUDA graph and replay it (CUDA only; the
            first frame of each geometry pays warm-up + capture).
    """

    def __init__(self, estimator, *, min_depth: float, max_depth: float, cuda_graphs: bool = False) -> None:
        self.estimator = estimator
        self.device: torch.device = estimator.device
        if cuda_graphs and self.device.type != "cuda":
            raise ValueError(f"cuda_graphs needs a CUDA device, the estimator runs on {self.device}")
        if not (np.isfinite(min_depth) and 0.0 <= min_depth < max_depth):
            raise ValueError(f"need 0 <= min_depth < max_depth (min finite), got {min_depth}, {max_depth}")
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.cuda_graphs = cuda_graphs
        cuda = self.device.type == "cuda"
        self._autocast = (not cuda) and estimator.precision == "bf16"
        self._dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(estimator.precision, torch.float32) \
            if cuda else torch.float32
        std, mean = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
        self._scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(self.device)
        self._shift = (mean / std).view(1, 3, 1, 1).to(self.device)
        self._buffers: _Buffers | None = None

    # ------------------------------------------------------------------------------------------ public
    def run(self, image: np.ndarray, input_size: int, color_order: ColorOrder, camera: PinholeRays | None,
            stride: int = 1) -> DeviceFrame:
        """Depth (and points when `camera` is given) for one uint8 HxWx3 image.

        Args:
            image: the decoded frame (any strides).
            input_size: the network's resolution (shorter side), as `DepthEstimator.infer`.
            color_order: "rgb" or "bgr".
            camera: intrinsics of this image's size, or None for depth only.
            stride: keep every stride-th row and column of the cloud.
        """
        check_image(image)
        check_color_order(color_order)
        height, width = image.shape[:2]
        if camera is not None and (camera.width, camera.height) != (width, height):
            raise ValueError(f"camera model is for {camera.width}x{camera.height}, the image is {width}x{height}")
        key = (height, width, input_size, color_order, camera, stride if camera is not None else 0)
        buffers = self._buffers_for(key, height, width, camera, stride)
        timings = {}
        start = time.perf_counter()
        buffers.host_in.numpy()[...] = image  # the only host-side copy of the image (any strides, read-only ok)
        if buffers.device_in is not buffers.host_in:
            buffers.device_in.copy_(buffers.host_in, non_blocking=True)
        uploaded = time.perf_counter()

        def device_work() -> None:
            self._device_work(buffers, height, width, input_size, color_order, stride)

        if self.cuda_graphs:
            self._replay(buffers, device_work)
        else:
            device_work()
        self._sync()
        computed = time.perf_counter()
        if buffers.host_out is not buffers.device_out:
            buffers.host_out.copy_(buffers.device_out, non_blocking=True)
            self._sync()
        done = time.perf_counter()
        timings.update(upload=uploaded - start, device=computed - uploaded, download=done - computed)
        flat = buffers.host_out.numpy()
        depth = flat[: height * width].reshape(height, width)
        xyz = None
        if camera is not None:
            rows, cols = -(-height // stride), -(-width // stride)
            xyz = flat[height * width:].reshape(rows, cols, 3)
        return DeviceFrame(depth, xyz, timings)

    # ------------------------------------------------------------------------------------------ internals
    def _buffers_for(self, key: tuple, height: int, width: int, camera: PinholeRays | None,
                     stride: int) -> _Buffers:
        """The buffers for this geometry: reused while it stays the same, replaced (and the graph dropped) when
        it changes, so memory stays that of one geometry."""
        if self._buffers is not None and self._buffers.key == key:
            return self._buffers
        cuda = self.device.type == "cuda"
        points = 0 if camera is None else (-(-height // stride)) * (-(-width // stride)) * 3
        host_in = torch.empty((height, width, 3), dtype=torch.uint8, pin_memory=cuda)
        device_in = torch.empty_like(host_in, device=self.device) if cuda else host_in
        device_out = torch.empty(height * width + points, dtype=torch.float32, device=self.device)
        host_out = torch.empty(device_out.shape, dtype=torch.float32, pin_memory=True) if cuda else device_out
        ray_x = ray_y = None
        if camera is not None:
            ray_x, ray_y = rays(camera, stride, self.device)
        self._buffers = None  # free the old geometry's buffers (and graph) before allocating more
        self._buffers = _Buffers(key, host_in, device_in, device_out, host_out, ray_x, ray_y)
        return self._buffers

    @torch.inference_mode()
    def _device_work(self, buffers: _Buffers, height: int, width: int, input_size: int, color_order: ColorOrder,
                     stride: int) -> None:
        """uint8 frame on the device -> masked depth and points in `buffers.device_out` (no host sync)."""
        rows, cols = network_size(height, width, input_size)
        x = buffers.device_in.unsqueeze(0).permute(0, 3, 1, 2)
        if color_order == "bgr":
            x = x.flip(1)
        x = F.interpolate(x.float(), size=(rows, cols), mode="bicubic", align_corners=False, antialias=False)
        x = x.mul_(self._scale).sub_(self._shift).to(self._dtype)
        with torch.autocast("cpu", dtype=torch.bfloat16) if self._autocast else contextlib.nullcontext():
            net = self.estimator.model(x)
        depth = buffers.device_out[: height * width].view(1, 1, height, width)
        depth.copy_(F.interpolate(net[:, None].float(), (height, width), mode="bilinear", align_corners=True))
        depth = depth.view(height, width)
        mask_depth_(depth, self.min_depth, self.max_depth)
        if buffers.ray_x is not None:
            points = buffers.device_out[height * width:].view(-(-height // stride), -(-width // stride), 3)
            backproject_(depth, buffers.ray_x, buffers.ray_y, stride, points)

    def _replay(self, buffers: _Buffers, work: Callable[[], None]) -> None:
        """Run `work` through a CUDA graph captured for this geometry (captured on first use, after warm-up on a
        side stream as torch requires)."""
        if buffers.graph is None:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(2):
                    work()
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                work()
            buffers.graph = graph
        buffers.graph.replay()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

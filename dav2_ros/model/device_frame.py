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
from collections import OrderedDict
from collections.abc import Callable, Sequence
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
    """The reused tensors for one batch geometry (B frames of H x W, their cameras, the stride)."""

    key: tuple
    host_in: torch.Tensor  # (B, H, W, 3) uint8, pinned on CUDA
    device_in: torch.Tensor  # (B, H, W, 3) uint8 on the device (the same tensor as host_in on the CPU)
    device_out: torch.Tensor  # flat float32: B*H*W depth values, then h*w*3 point coordinates per frame with a camera
    host_out: torch.Tensor  # the same on the host (pinned on CUDA; the same tensor as device_out on the CPU)
    rays: list[tuple[torch.Tensor, torch.Tensor] | None]  # per frame: (ray_x, ray_y), None without a camera
    layout: list[tuple[int, tuple[int, int, int] | None]]  # per frame: its points' offset in device_out, shape
    graph: torch.cuda.CUDAGraph | None = None


class DeviceFramePipeline:
    """Runs `estimator.model` and the per-frame geometry on `estimator.device`, reusing buffers keyed by shape.

    Args:
        estimator: a `DepthEstimator` (its model, device and precision are used; not its preprocessing mode:
            this path always uses the fast, on-device preprocessing).
        min_depth, max_depth: the validity range in meters; depth outside it becomes NaN.
        cuda_graphs: capture the device work per frame geometry as a CUDA graph and replay it (CUDA only; the
            first frame of each geometry pays warm-up + capture).
        max_geometries: how many geometries keep their buffers (and graphs) at once, least recently used dropped
            first: 1 for one camera (memory of one geometry), the number of cameras for a multi-camera node.
    """

    def __init__(self, estimator, *, min_depth: float, max_depth: float, cuda_graphs: bool = False,
                 max_geometries: int = 1) -> None:
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
        if max_geometries < 1:
            raise ValueError(f"max_geometries must be >= 1, got {max_geometries}")
        self.max_geometries = max_geometries
        self._buffers: OrderedDict[tuple, _Buffers] = OrderedDict()

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
        return self.run_batch([image], input_size, color_order, [camera], stride)[0]

    def run_batch(self, images: Sequence[np.ndarray], input_size: int, color_order: ColorOrder,
                  cameras: Sequence[PinholeRays | None], stride: int = 1) -> list[DeviceFrame]:
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
        has_camera = any(camera is not None for camera in cameras)
        key = (len(images), height, width, input_size, color_order, tuple(cameras), stride if has_camera else 0)
        buffers = self._buffers_for(key, height, width, cameras, stride)
        start = time.perf_counter()
        host_in = buffers.host_in.numpy()
        for i, image in enumerate(images):
            host_in[i] = image  # the only host-side copy of each image (any strides, read-only ok)
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
        timings = dict(upload=uploaded - start, device=computed - uploaded, download=done - computed)
        flat = buffers.host_out.numpy()
        depths = flat[: len(images) * height * width].reshape(len(images), height, width)
        frames = []
        for i, (offset, shape) in enumerate(buffers.layout):
            xyz = None if shape is None else flat[offset: offset + int(np.prod(shape))].reshape(shape)
            frames.append(DeviceFrame(depths[i], xyz, dict(timings)))
        return frames

    # ------------------------------------------------------------------------------------------ internals
    @staticmethod
    def _point_layout(with_points: Sequence[bool], height: int, width: int, stride: int
                      ) -> list[tuple[int, tuple[int, int, int] | None]]:
        """Per frame: where its points start in the flat output buffer and their shape (None: no camera)."""
        offset = len(with_points) * height * width
        shape = (-(-height // stride), -(-width // stride), 3)
        layout: list[tuple[int, tuple[int, int, int] | None]] = []
        for points in with_points:
            if not points:
                layout.append((offset, None))
            else:
                layout.append((offset, shape))
                offset += shape[0] * shape[1] * 3
        return layout

    def _buffers_for(self, key: tuple, height: int, width: int, cameras: Sequence[PinholeRays | None],
                     stride: int) -> _Buffers:
        """The buffers for this geometry: reused while it comes back, the least recently used geometry's
        buffers (and graph) dropped beyond `max_geometries`, so memory stays that of a few geometries."""
        if key in self._buffers:
            self._buffers.move_to_end(key)
            return self._buffers[key]
        while len(self._buffers) >= self.max_geometries:
            self._buffers.popitem(last=False)  # free before allocating more
        cuda = self.device.type == "cuda"
        batch = len(cameras)
        layout = self._point_layout([c is not None for c in cameras], height, width, stride)
        offset, shape = layout[-1]
        size = offset + (0 if shape is None else shape[0] * shape[1] * 3)
        host_in = torch.empty((batch, height, width, 3), dtype=torch.uint8, pin_memory=cuda)
        device_in = torch.empty_like(host_in, device=self.device) if cuda else host_in
        device_out = torch.empty(size, dtype=torch.float32, device=self.device)
        host_out = torch.empty(device_out.shape, dtype=torch.float32, pin_memory=True) if cuda else device_out
        frame_rays = [None if camera is None else rays(camera, stride, self.device) for camera in cameras]
        self._buffers[key] = _Buffers(key, host_in, device_in, device_out, host_out, frame_rays, layout)
        return self._buffers[key]

    @torch.inference_mode()
    def _device_work(self, buffers: _Buffers, height: int, width: int, input_size: int, color_order: ColorOrder,
                     stride: int) -> None:
        """uint8 frames on the device -> masked depth and points in `buffers.device_out` (no host sync)."""
        batch = buffers.device_in.shape[0]
        rows, cols = network_size(height, width, input_size)
        x = buffers.device_in.permute(0, 3, 1, 2)
        if color_order == "bgr":
            x = x.flip(1)
        x = F.interpolate(x.float(), size=(rows, cols), mode="bicubic", align_corners=False, antialias=False)
        x = x.mul_(self._scale).sub_(self._shift).to(self._dtype)
        with torch.autocast("cpu", dtype=torch.bfloat16) if self._autocast else contextlib.nullcontext():
            net = self.estimator.model(x)
        depth = buffers.device_out[: batch * height * width].view(batch, 1, height, width)
        depth.copy_(F.interpolate(net[:, None].float(), (height, width), mode="bilinear", align_corners=True))
        depth = depth.view(batch, height, width)
        mask_depth_(depth, self.min_depth, self.max_depth)
        for i, ((offset, shape), frame_rays) in enumerate(zip(buffers.layout, buffers.rays)):
            if frame_rays is not None:
                points = buffers.device_out[offset: offset + shape[0] * shape[1] * 3].view(shape)
                backproject_(depth[i], frame_rays[0], frame_rays[1], stride, points)

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

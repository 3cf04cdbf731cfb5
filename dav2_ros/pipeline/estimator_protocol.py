"""What the frame path needs of an estimator (`Estimator`), and of the on-device frame path it can make
(`DevicePath`): declared here so that the pipeline reads nothing an estimator does not promise, and imports no torch.
`dav2_ros.engines.estimator.DepthEstimator` is the real one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from dav2_ros.geometry.intrinsics import Intrinsics
from dav2_ros.model.config import ColorOrder


class _ModelConfig(Protocol):
    model_type: str
    max_depth: float


class _Device(Protocol):
    """Where an estimator runs, in torch's words (a ``torch.device``)."""

    @property
    def type(self) -> str:
        """``"cpu"``, ``"cuda"``, ..."""
        ...


class DeviceFrame(Protocol):
    """One frame from a ``DevicePath`` (``engines.torch_runtime.device_frame.DeviceFrame``): views of buffers that
    the path's next run overwrites."""

    depth: np.ndarray
    xyz: np.ndarray | None
    timings: dict[str, float]  # seconds: "upload", "device", "download"
    valid_pixels: int
    flying_pixels: int


class DevicePath(Protocol):
    """The on-device frame path (``engines.torch_runtime.device_frame.DeviceFramePath``): preprocessing, network,
    upsampling, validity mask, flying-pixel filter and back-projection of same-size frames on the estimator's
    device, with one upload and one download."""

    def run_batch(self, images: Sequence[np.ndarray], input_size: int, color_order: ColorOrder,
                  cameras: Sequence[Intrinsics | None], stride: int = 1) -> Sequence[DeviceFrame]: ...


class Estimator(Protocol):
    """What ``FrameProcessor`` (and ``pipeline.builders``) need of an estimator; ``dav2_ros.engines.estimator.
    DepthEstimator`` is the real one.

    Attributes:
        config: the model's type (``"metric"``/``"relative"``) and the metric head's ``max_depth``.
        last_timings: seconds of the last ``infer``/``infer_batch`` call per stage.
        device: where the network runs (``device.type == "cuda"`` picks the device path by default).
        backend: the engine that runs the network (``"torch"``, ``"openvino"``, ``"onnxruntime"``); only
            ``"torch"`` has an on-device frame path.
    """

    config: _ModelConfig
    last_timings: dict[str, float]
    device: _Device
    backend: str

    def infer(self, image: np.ndarray, input_size: int = 518, color_order: ColorOrder = "rgb") -> np.ndarray: ...

    def infer_batch(self, images: Sequence[np.ndarray], input_size: int = 518,
                    color_order: ColorOrder = "rgb") -> list[np.ndarray]: ...

    def device_frame_path(self, *, min_depth: float, max_depth: float, cuda_graphs: bool = False,
                          max_geometries: int = 1, points: bool = True, edge_threshold: float = 0.0,
                          edge_dilation: int = 0) -> DevicePath:
        """A new on-device frame path for this estimator's network with these options (a metric model's validity
        range, CUDA graphs, frame geometries kept, points or not, the flying-pixel filter).

        Raises:
            ValueError: this estimator has none (a backend other than torch), or an option it refuses.
        """
        ...

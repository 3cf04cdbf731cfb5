"""One frame through `FrameProcessor`: what is asked for it (`FrameRequest`) and what it gives (`FrameResult`, or
the reason it was refused: `FrameOutcome`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from dav2_ros.geometry.intrinsics import Intrinsics
from dav2_ros.geometry.temporal_filter import TemporalFilter
from dav2_ros.model.config import ColorOrder


@dataclass
class FrameResult:
    """One frame's outputs; ``None`` for what this frame does not produce.

    Attributes:
        depth: HxW float32 meters along the optical axis, NaN where invalid (metric models, or
            relative ones with a conversion).
        relative: HxW float32 inverse depth without scale (relative models only).
        depth_intrinsics: the intrinsics at the depth image's size (what ``xyz`` was computed with
            and what depth/camera_info carries).
        xyz: ``ceil(H/s) x ceil(W/s) x 3`` float32 points, NaN where depth is NaN.
        colored: HxWx3 uint8 BGR preview.
        colors: the cloud's colors, ``xyz``'s shape of uint8 BGR: the image at the kept pixels (a view of the
            request's image), when the request asked for them (``cloud_rgb``) and there are points; else None.
        timings: seconds per stage: preprocess, inference, postprocess (the estimator's, for the whole
            batch the frame was in), depth (validity mask / conversion / flying-pixel filter), temporal, cloud,
            colorize, total; and batch_size, the number of frames that went through the network with this one.
        valid_pixels, flying_pixels: with the flying-pixel filter on, the depth pixels valid before it and those
            it removed; None with it off.
    """

    depth: np.ndarray | None
    relative: np.ndarray | None
    depth_intrinsics: Intrinsics | None
    xyz: np.ndarray | None
    colored: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)
    valid_pixels: int | None = None
    flying_pixels: int | None = None
    colors: np.ndarray | None = None


#: ``align(output) -> conversion | None`` of a frame (a sparse depth fit, ``pipeline.sparse_alignment``): relative
#: models: metric inverse depth = ``scale * output + shift`` for ``(scale, shift)``, None: no metric depth; metric
#: models: depth x ``scale`` for ``(scale, 0)``, None: unchanged. It replaces ``relative_scale``/``relative_shift``.
Align = Callable[[np.ndarray], Optional[tuple[float, float]]]


@dataclass(frozen=True)
class FrameRequest:
    """One frame for ``FrameProcessor.process_batch``: the arguments of ``process``, the frame's ``align``,
    ``cloud``: False skips this frame's points (the node: nobody subscribes to them) as ``publish_cloud`` off does,
    and ``cloud_rgb``: the result carries the points' colors (``FrameResult.colors``)."""

    image: np.ndarray
    color_order: ColorOrder
    intrinsics: Intrinsics | None = None
    colorize: bool | None = None
    align: Align | None = None
    temporal: TemporalFilter | None = None
    stamp: float | None = None
    source: str | None = None
    cloud: bool = True
    cloud_rgb: bool = False


#: What ``process_batch`` gives per frame: its result, or why it was refused (``InputRejected``/``IntrinsicsError``).
FrameOutcome = Union[FrameResult, Exception]

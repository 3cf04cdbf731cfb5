"""One camera's half of the frame path, without ROS: shared by the node's `CameraChannel` and bag_to_depth's
`BagConverter`, so both turn an image message into the same `FrameRequest`.

A `Camera` keeps the camera's latest CameraInfo, its temporal filter and its sparse depth (the aligner and the
buffer of measurements); it decodes an image message into pixels and builds the frame's request: the intrinsics
scaled to the image, the sparse fit, the temporal filter, the stamp. What only one side has stays there:
subscriptions and publishers (the node), reading and writing bags (bag_to_depth). What the camera notices about
its CameraInfo goes to its `CameraEvents`: the node says and counts it, bag_to_depth counts it for its summary.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Optional, Protocol

import numpy as np

from dav2_ros.conversions.compressed_codec import compressed_msg_to_array
from dav2_ros.conversions.image_codec import image_msg_to_array
from dav2_ros.geometry.intrinsics import Intrinsics, IntrinsicsError
from dav2_ros.geometry.temporal_filter import TemporalFilter, TemporalOptions
from dav2_ros.model.config import ColorOrder
from dav2_ros.pipeline.frames import Align, FrameRequest
from dav2_ros.pipeline.processing import refuse_elongated
from dav2_ros.pipeline.settings import NodeSettings
from dav2_ros.pipeline.sparse_alignment import (FrameContext, SparseAligner, SparseBuffer, SparseOptions,
                                                fixed_conversion, stamp_seconds)


class CameraEvents(Protocol):
    """What a `Camera` reports while it looks for a frame's intrinsics (each called on the thread that builds the
    request; none may raise)."""

    def no_camera_info(self) -> None:
        """No CameraInfo yet, on a frame that would have metric depth: no depth/camera_info and no cloud for it."""

    def camera_info_scaled(self, info: Intrinsics, scaled: Intrinsics) -> None:
        """The CameraInfo (`info`) is for another resolution than the image: `scaled` are used."""

    def camera_info_unusable(self, error: IntrinsicsError) -> None:
        """The CameraInfo cannot give intrinsics for the image (`error.reason`): no depth/camera_info, no cloud."""


@dataclass(frozen=True)
class SparseTrack:
    """A camera's sparse depth: the aligner that fits each frame to it and the buffer of measurements received."""

    aligner: SparseAligner
    buffer: SparseBuffer


class Camera:
    """The per-camera state of the frame path and the steps from an image message to a `FrameRequest`.

    Args:
        events: where CameraInfo problems are reported.
        compressed: the camera's images are sensor_msgs/CompressedImage (else sensor_msgs/Image).
        sparse: the camera's sparse depth, or None (the node sets it while subscribed).

    The CameraInfo is set from one thread (the node's executor) and read from another (its worker); the temporal
    filter and the request are the worker's alone.
    """

    def __init__(self, events: CameraEvents, compressed: bool = False, sparse: Optional[SparseTrack] = None) -> None:
        self.events = events
        self.compressed = compressed
        self.sparse = sparse
        self._camera_info_lock = threading.Lock()
        self._camera_info: Any = None
        self._temporal: Optional[TemporalFilter] = None

    # --------------------------------------------------------------------------- CameraInfo
    @property
    def camera_info(self) -> Any:
        """The latest CameraInfo message (rclpy or rosbags), or None."""
        with self._camera_info_lock:
            return self._camera_info

    def set_camera_info(self, info: Any) -> bool:
        """Keep `info` as the latest CameraInfo (None: none yet); True when it is the first one."""
        with self._camera_info_lock:
            first = self._camera_info is None
            self._camera_info = info
        return first and info is not None

    def intrinsics_at(self, width: int, height: int, settings: NodeSettings) -> Optional[Intrinsics]:
        """The latest CameraInfo's intrinsics scaled to a `width` x `height` image, or None (reported to `events`:
        no CameraInfo -- only when the frame would have metric depth --, or an unusable one)."""
        info = self.camera_info
        if info is None:
            if settings.publishes_metric_depth:
                self.events.no_camera_info()
            return None
        try:
            intrinsics = Intrinsics.from_camera_info(info)
            if (intrinsics.width, intrinsics.height) != (width, height):
                scaled = intrinsics.scaled_to(width, height)
                self.events.camera_info_scaled(intrinsics, scaled)
                intrinsics = scaled
            return intrinsics
        except IntrinsicsError as error:
            self.events.camera_info_unusable(error)
            return None

    # ------------------------------------------------------------------------------ filters
    @property
    def temporal(self) -> Optional[TemporalFilter]:
        """The temporal filter the last request got (None when off)."""
        return self._temporal

    def temporal_filter(self, settings: NodeSettings) -> Optional[TemporalFilter]:
        """This camera's temporal filter for `settings`: None when off; a new one (starting over) when
        `temporal_filter` or `temporal_max_gap` changed."""
        if settings.temporal_filter == "off":
            self._temporal = None
            return None
        options = TemporalOptions(max_gap_s=settings.temporal_max_gap)
        current = self._temporal
        if current is None or current.mode != settings.temporal_filter or current.options != options:
            self._temporal = TemporalFilter(settings.temporal_filter, options)
        return self._temporal

    def align_for(self, header: Any, width: int, height: int, intrinsics: Optional[Intrinsics],
                  settings: NodeSettings) -> Optional[Align]:
        """The frame's sparse depth fit (`FrameRequest.align`), or None without sparse depth or when this model
        type does not use it. The measurement is chosen when the fit runs, after inference: one that arrived
        meanwhile may be closer in stamp."""
        track = self.sparse
        options = SparseOptions.from_settings(settings)
        if track is None or not options.applies_to(settings.model_type):
            return None
        stamp = stamp_seconds(header.stamp)
        is_metric = settings.model_type == "metric"
        fixed = fixed_conversion(settings)

        def align(output: np.ndarray) -> Optional[tuple[float, float]]:
            frame = FrameContext(stamp, header.frame_id, width, height, intrinsics, track.buffer.closest(stamp))
            return track.aligner.conversion(output, frame, options, is_metric, fixed)
        return align

    # ------------------------------------------------------------------------------ frames
    def decode(self, msg: Any) -> tuple[np.ndarray, ColorOrder]:
        """The image's pixels and color order. Raises InputRejected: a bad encoding, size or data, or an image the
        model refuses (`bad_aspect`, checked here so that such an image is not taken for a CameraInfo problem)."""
        image, color_order = compressed_msg_to_array(msg) if self.compressed else image_msg_to_array(msg)
        height, width = image.shape[:2]
        refuse_elongated(width, height)
        return image, color_order

    def request(self, msg: Any, settings: NodeSettings, colorize: Optional[bool] = None,
                cloud: bool = True) -> FrameRequest:
        """The `FrameRequest` of one image message (rclpy or rosbags): its pixels, the intrinsics at its size, its
        sparse fit and this camera's temporal filter, with `colorize` (the preview) and `cloud` (the points) as
        asked. Raises InputRejected when the image cannot be used (`decode`)."""
        image, color_order = self.decode(msg)
        height, width = image.shape[:2]
        intrinsics = self.intrinsics_at(width, height, settings)
        header = msg.header
        return FrameRequest(image, color_order, intrinsics, colorize=colorize,
                            align=self.align_for(header, width, height, intrinsics, settings),
                            temporal=self.temporal_filter(settings), stamp=stamp_seconds(header.stamp),
                            source=header.frame_id, cloud=cloud, cloud_rgb=settings.cloud_rgb)

"""The per-frame loop of bag_to_depth: decode, run the FrameProcessor, write the outputs.

Every frame is processed (no dropping). Outputs carry the input image's header (stamp, frame_id)
and bag timestamp. A frame that cannot be processed is counted by reason and skipped; a stop
request (SIGINT) ends the loop between frames so each frame's messages are written whole.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dav2_ros.errors import InputRejected
from dav2_ros.conversions.image_codec import compressed_msg_to_array, image_msg_to_array
from dav2_ros.geometry.depth_filters import TemporalFilter, TemporalOptions
from dav2_ros.pipeline.frame_outputs import frame_outputs
from dav2_ros.geometry.intrinsics import Intrinsics, IntrinsicsError
from dav2_ros.offline.bag_frames import Frame, FrameSource, Passthrough
from dav2_ros.offline.bag_messages import (
    POINTCLOUD_TYPE,
    camera_info_message,
    image_message,
    pointcloud_message,
)
from dav2_ros.offline.bag_io import CAMERA_INFO_TYPE, IMAGE_TYPE
from dav2_ros.offline.camera_topics import CameraTopics, join_topic
from dav2_ros.offline.run_summary import RunStats
from dav2_ros.pipeline.sparse_alignment import (FrameContext, SparseAligner, SparseOptions, fixed_conversion,
                                                stamp_seconds)

if TYPE_CHECKING:
    import numpy as np
    from rosbags.typesys.store import Typestore

    from dav2_ros.pipeline.settings import NodeSettings
    from dav2_ros.offline.output_bag import OutputBag
    from dav2_ros.pipeline.processing import Align, FrameProcessor, FrameResult

NO_INFO_IN_BAG = "the bag has no CameraInfo for this camera"
NO_INFO_YET = "no CameraInfo recorded at or before the frame"


@dataclasses.dataclass(frozen=True)
class OutputTopics:
    """The output topic names, all under one namespace (the camera's, or --output-ns)."""

    depth: str
    depth_info: str
    relative: str
    points: str
    colored: str

    @classmethod
    def under(cls, namespace: str) -> OutputTopics:
        """The live node's relative names (`depth/image`, `points`, ...) resolved in `namespace`."""
        return cls(
            depth=join_topic(namespace, "depth/image"),
            depth_info=join_topic(namespace, "depth/camera_info"),
            relative=join_topic(namespace, "depth/relative"),
            points=join_topic(namespace, "points"),
            colored=join_topic(namespace, "depth/colored"),
        )


class BagConverter:
    """Runs a FrameProcessor on every frame of a FrameSource and writes the results to an OutputBag."""

    def __init__(
        self,
        processor: FrameProcessor,
        settings: NodeSettings,
        camera: CameraTopics,
        output: OutputBag,
        typestore: Typestore,
        topics: OutputTopics,
        colorize: bool = False,
        sparse: SparseAligner | None = None,
    ) -> None:
        """Set up the loop (`settings`: the node's, for the cloud and sparse options; `sparse`: the metric-scale
        fit to a sparse depth topic, fed by the FrameSource's `sparse_buffer`); nothing runs until `run`."""
        self._sparse = sparse
        self._processor = processor
        self._settings = settings
        self._camera = camera
        self._output = output
        self._typestore = typestore
        self._topics = topics
        self._colorize = colorize
        self._copied: dict[int, object | None] = {}
        # The camera's temporal filter, as the node keeps one per camera (reset on stamp gaps, frame_id or size).
        self._temporal = None if settings.temporal_filter == "off" else TemporalFilter(
            settings.temporal_filter, TemporalOptions(max_gap_s=settings.temporal_max_gap))

    def run(
        self,
        source: FrameSource,
        stats: RunStats,
        on_frame: Callable[[], None] = lambda: None,
        stop_requested: Callable[[], bool] = lambda: False,
    ) -> None:
        """Process every item of `source` until it ends or `stop_requested()` turns true between items."""
        for item in source:
            if isinstance(item, Passthrough):
                self._copy(item)
            else:
                self._process(item, stats)
                on_frame()
            if stop_requested():
                stats.interrupted = True
                return

    def _copy(self, item: Passthrough) -> None:
        """Write an input message unchanged (its topic is added on first sight)."""
        if item.connection.id not in self._copied:
            self._copied[item.connection.id] = self._output.copy_topic(item.connection)
        connection = self._copied[item.connection.id]
        if connection is not None:
            self._output.write_raw(connection, item.timestamp, item.raw)

    def _process(self, frame: Frame, stats: RunStats) -> None:
        """Decode one frame, run the model and write its outputs; failures are counted by reason."""
        stats.frames_read += 1
        started = time.perf_counter()
        try:
            msg = self._typestore.deserialize_cdr(frame.raw, self._camera.image.msgtype)
        except Exception:  # noqa: BLE001  (any decode error means a damaged message)
            stats.failures["deserialize_failed"] += 1
            return
        try:
            if self._camera.compressed:
                image, color_order = compressed_msg_to_array(msg)
            else:
                image, color_order = image_msg_to_array(msg)
        except InputRejected as exc:
            stats.failures[exc.reason] += 1
            return
        intrinsics = self._intrinsics(frame, image.shape[1], image.shape[0], stats)
        try:
            header = msg.header
            result = self._processor.process(image, color_order, intrinsics, colorize=self._colorize,
                                             align=self._align(msg.header, image, intrinsics, frame),
                                             temporal=self._temporal,
                                             stamp=header.stamp.sec + header.stamp.nanosec * 1e-9,
                                             source=header.frame_id, cloud_rgb=self._settings.cloud_rgb)
        except InputRejected as exc:  # e.g. an image the model cannot take
            stats.failures[exc.reason] += 1
            return
        stats.record_frame(time.perf_counter() - started, result.timings)
        self._write(msg.header, frame.timestamp, result, stats)

    def _align(self, header: object, image: np.ndarray, intrinsics: Intrinsics | None, frame: Frame) -> Align | None:
        """The frame's sparse depth fit (as the node's `SparseInput.align_for`), or None without a sparse topic."""
        settings = self._settings
        options = SparseOptions.from_settings(settings)
        if self._sparse is None or frame.sparse is None or not options.applies_to(settings.model_type):
            return None
        stamp = stamp_seconds(header.stamp)  # type: ignore[attr-defined]
        context = FrameContext(stamp, header.frame_id, image.shape[1], image.shape[0],  # type: ignore[attr-defined]
                               intrinsics, frame.sparse.closest(stamp))
        aligner = self._sparse
        return lambda output: aligner.conversion(output, context, options, settings.model_type == "metric",
                                                 fixed_conversion(settings))

    def _intrinsics(self, frame: Frame, width: int, height: int, stats: RunStats) -> Intrinsics | None:
        """The CameraInfo's intrinsics at the image's size (as the node scales them), or None with the
        reason counted, when there is no usable CameraInfo (then no cloud and no depth/camera_info)."""
        if frame.camera_info is None:
            stats.clouds_skipped[NO_INFO_IN_BAG if self._camera.info is None else NO_INFO_YET] += 1
            return None
        try:
            intrinsics = Intrinsics.from_camera_info(frame.camera_info)
            if (intrinsics.width, intrinsics.height) != (width, height):
                intrinsics = intrinsics.scaled_to(width, height)
        except IntrinsicsError as exc:
            stats.clouds_skipped[f"unusable CameraInfo ({exc.reason}: {exc.detail})"] += 1
            return None
        return intrinsics

    def _write(self, header: object, timestamp: int, result: FrameResult, stats: RunStats) -> None:
        """Write what the node would publish for this result, with the input header and bag time."""
        ts, out, topics = self._typestore, self._output, self._topics
        for name, fields in frame_outputs(result, self._settings.cloud_layout):
            if name == "points":
                out.write(topics.points, POINTCLOUD_TYPE, timestamp, pointcloud_message(ts, header, fields))
            elif name == "depth_info":
                out.write(topics.depth_info, CAMERA_INFO_TYPE, timestamp, camera_info_message(ts, header, fields))
            else:
                out.write(getattr(topics, name), IMAGE_TYPE, timestamp, image_message(ts, header, fields))
            stats.count_written(name)

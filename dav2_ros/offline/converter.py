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
from dav2_ros.pipeline.camera import Camera, SparseTrack
from dav2_ros.pipeline.frame_outputs import OUTPUT_MESSAGES, frame_outputs
from dav2_ros.geometry.intrinsics import Intrinsics, IntrinsicsError
from dav2_ros.offline.bag_frames import Frame, FrameSource, Passthrough
from dav2_ros.offline.bag_messages import MESSAGE_BUILDERS
from dav2_ros.offline.camera_topics import CameraTopics, join_topic
from dav2_ros.offline.run_summary import RunStats

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

    from dav2_ros.pipeline.settings import NodeSettings
    from dav2_ros.offline.output_bag import OutputBag
    from dav2_ros.pipeline.frames import FrameResult
    from dav2_ros.pipeline.processing import FrameProcessor

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
        sparse: SparseTrack | None = None,
    ) -> None:
        """Set up the loop (`settings`: the node's, for the cloud and sparse options; `sparse`: the fit to a sparse
        depth topic and the FrameSource's `sparse_buffer` it reads); nothing runs until `run`."""
        self._processor = processor
        self._settings = settings
        self._camera_topics = camera
        # The camera's state as the node keeps it: the latest CameraInfo (the FrameSource's at each frame), the
        # temporal filter (reset on stamp gaps, frame_id or size) and the sparse depth.
        self.camera = Camera(self, compressed=camera.compressed, sparse=sparse)
        self._stats = RunStats(frames_in_bag=0)  # `run`'s: frames, failures and the camera's events are counted there
        self._output = output
        self._typestore = typestore
        self._topics = topics
        self._colorize = colorize
        self._copied: dict[int, object | None] = {}

    def run(
        self,
        source: FrameSource,
        stats: RunStats,
        on_frame: Callable[[], None] = lambda: None,
        stop_requested: Callable[[], bool] = lambda: False,
    ) -> None:
        """Process every item of `source` until it ends or `stop_requested()` turns true between items."""
        self._stats = stats
        for item in source:
            if isinstance(item, Passthrough):
                self._copy(item)
            else:
                self._process(item)
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

    def _process(self, frame: Frame) -> None:
        """Decode one frame, run the model and write its outputs; failures are counted by reason."""
        stats = self._stats
        stats.frames_read += 1
        started = time.perf_counter()
        try:
            msg = self._typestore.deserialize_cdr(frame.raw, self._camera_topics.image.msgtype)
        except Exception:  # noqa: BLE001  (any decode error means a damaged message)
            stats.failures["deserialize_failed"] += 1
            return
        self.camera.set_camera_info(frame.camera_info)
        try:
            request = self.camera.request(msg, self._settings, colorize=self._colorize)
            result = self._processor.process_request(request)
        except InputRejected as exc:  # a bad image, or one the model cannot take
            stats.failures[exc.reason] += 1
            return
        stats.record_frame(time.perf_counter() - started, result.timings)
        self._write(msg.header, frame.timestamp, result)

    # The camera's `CameraEvents`: counted for the summary.
    def no_camera_info(self) -> None:
        """No CameraInfo in the bag for this camera, or none recorded before the frame."""
        self._stats.clouds_skipped[NO_INFO_IN_BAG if self._camera_topics.info is None else NO_INFO_YET] += 1

    def camera_info_scaled(self, info: Intrinsics, scaled: Intrinsics) -> None:
        """The recorded CameraInfo is for another image size: scaled, as the node does (not counted)."""

    def camera_info_unusable(self, error: IntrinsicsError) -> None:
        """The recorded CameraInfo cannot give intrinsics for the frame."""
        self._stats.clouds_skipped[f"unusable CameraInfo ({error.reason}: {error.detail})"] += 1

    def _write(self, header: object, timestamp: int, result: FrameResult) -> None:
        """Write what the node would publish for this result, with the input header and bag time."""
        ts, out, topics = self._typestore, self._output, self._topics
        for name, fields in frame_outputs(result, self._settings.cloud_layout):
            msgtype, build = MESSAGE_BUILDERS[OUTPUT_MESSAGES[name]]
            out.write(getattr(topics, name), msgtype, timestamp, build(ts, header, fields))
            self._stats.count_written(name)

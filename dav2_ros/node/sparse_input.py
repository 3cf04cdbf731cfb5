"""One camera's sparse depth input (the `sparse.input` parameter): its subscription feeding the camera's
`SparseTrack` (the buffer of measurements and the aligner), and the throttled warnings; the per-frame fit itself
is ROS-free (`dav2_ros.pipeline.camera.Camera.align_for`, `dav2_ros.pipeline.sparse_alignment`).

`sparse_depth` (sensor_msgs/Image) or `sparse_points` (sensor_msgs/PointCloud2) under the camera's namespace, with
sensor-data QoS like the image. A cloud in a frame other than the camera's optical frame is transformed with tf2
when `tf2_ros` can be imported (a ROS 2 distro); without it (the PyPI ROS wheels have no tf2_ros) such a cloud is
refused with that reason.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image, PointCloud2

from dav2_ros.geometry.sparse_points import rotation_from_quaternion
from dav2_ros.node.throttled_log import ThrottledLog
from dav2_ros.pipeline.camera import SparseTrack
from dav2_ros.pipeline.settings import NodeSettings
from dav2_ros.pipeline.sparse_alignment import TOPICS, SparseAligner, SparseBuffer, SparseRejected

NO_TF2 = ("tf2_ros is not importable here (the PyPI ROS 2 wheels have none), so it cannot be transformed: publish "
          "the cloud in the camera's optical frame, or run the node on a ROS 2 distro with tf2_ros")


class SparseInput:
    """The sparse depth subscription of one camera and the `track` it fills (the camera's `sparse` while subscribed).

    Args:
        node: the node that owns the subscription (and, with tf2, the transform listener).
        topic: the camera's `topic()` function (`sparse_depth` -> `front/sparse_depth`).
        camera: the camera's name ("" for a single camera), for warning keys.
        settings: the node's settings at start (`sparse.input`, QoS).
        warnings: the node's throttled warning log.
    """

    def __init__(self, node: Node, topic: Callable[[str], str], camera: str, settings: NodeSettings,
                 warnings: ThrottledLog) -> None:
        self.kind = settings.sparse_input
        self._node = node
        self._camera = camera
        self._warnings = warnings
        buffer = SparseBuffer()
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=settings.qos_input_depth,
                         reliability=qos_profile_sensor_data.reliability,
                         durability=qos_profile_sensor_data.durability)
        msg_type = Image if self.kind == "depth" else PointCloud2
        self.subscription = node.create_subscription(
            msg_type, topic(TOPICS[self.kind]), buffer.add, qos,
            qos_overriding_options=QoSOverridingOptions.with_default_policies())
        transform, note = (None, "")
        if self.kind == "points":
            transform, note = self._tf2_transform()
        self.track = SparseTrack(SparseAligner(self.kind, self.subscription.topic_name, transform, note, self._problem),
                                 buffer)
        uses = "fits each frame's scale and shift" if settings.model_type == "relative" else (
            "corrects the metric scale" if settings.sparse_metric_correction else
            "is NOT used: a metric model needs sparse.metric_correction true")
        node.get_logger().info(f"sparse depth from {self.subscription.topic_name} ({msg_type.__name__}): {uses}")

    def close(self) -> None:
        """Stop receiving sparse depth (and transforms): the managed node's deactivation."""
        self._node.destroy_subscription(self.subscription)
        listener = getattr(self, "_tf_listener", None)
        if listener is not None:
            listener.unregister()

    def diagnostics(self) -> list[tuple[str, str]]:
        """(key, value) pairs for this camera's DiagnosticStatus."""
        return [("sparse.received", str(self.track.buffer.received)), *self.track.aligner.status().items()]

    def warning(self) -> Optional[str]:
        """The WARN message of this camera's status while frames fall back past the held fit, else None."""
        return self.track.aligner.status().warning()

    def _problem(self, problem: SparseRejected) -> None:
        """A frame without a usable sparse fit: say why (throttled per camera and reason)."""
        self._warnings.warn(f"{self._camera}:sparse_{problem.reason}",
                            f"sparse depth not used ({problem.reason}): {problem.detail}")

    def _tf2_transform(self) -> tuple[Optional[Callable], str]:
        """A tf2 lookup for clouds of another frame, or (None, why not)."""
        try:
            import tf2_ros  # a ROS 2 distro has it; the PyPI wheels do not
        except ImportError:
            return None, NO_TF2
        buffer = tf2_ros.Buffer()
        self._tf_listener = tf2_ros.TransformListener(buffer, self._node)

        def transform(source: str, target: str, stamp: Any) -> tuple[np.ndarray, np.ndarray]:
            from rclpy.duration import Duration
            from rclpy.time import Time

            try:
                when = Time.from_msg(stamp)
            except ValueError:  # a stamp rclpy cannot represent (negative, nanosec >= 1e9): the latest transform
                when = Time()
            try:
                stamped = buffer.lookup_transform(target, source, when, timeout=Duration(seconds=0.0))
            except tf2_ros.TransformException as error:
                raise SparseRejected("wrong_frame", f"no transform from {source!r} to the camera frame {target!r} "
                                                    f"at the cloud's stamp: {error}") from None
            q, t = stamped.transform.rotation, stamped.transform.translation
            return rotation_from_quaternion(q.x, q.y, q.z, q.w), np.array([t.x, t.y, t.z])
        return transform, "tf2 has no transform for it"

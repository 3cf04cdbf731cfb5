"""One camera of the depth node: its subscriptions, publishers and counters, and its ROS-free `Camera` (latest
CameraInfo, temporal filter, sparse depth; the frame's request).

A node with the `cameras` parameter empty has one channel on `image`/`camera_info`; with `cameras: [front, rear]`
it has one per name, each under its own relative namespace (`front/image` -> `front/depth/image`, ...), so
remapping and QoS overrides work per camera exactly as for a single one.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from dav2_ros.conversions.buffers import ReusedByteArrays
from dav2_ros.pipeline.frame_outputs import OUTPUT_MESSAGES, expected_outputs, frame_outputs
from dav2_ros.geometry.intrinsics import Intrinsics, IntrinsicsError, distortion_is_nonzero
from dav2_ros.node.messages import MESSAGE_BUILDERS
from dav2_ros.node.throttled_log import ThrottledLog
from dav2_ros.node.sparse_input import SparseInput
from dav2_ros.pipeline.settings import NodeSettings
from dav2_ros.node.stats import FrameStats
from dav2_ros.pipeline.camera import Camera
from dav2_ros.pipeline.frames import FrameRequest, FrameResult


class CameraChannel:
    """The topics and per-camera state of one camera (name "" for the single-camera node).

    Args:
        node: the node that owns the subscriptions and publishers.
        name: the camera's relative namespace, or "" (topics without a prefix).
        settings: the node's settings at start (QoS, transport, model type).
        on_image: called from the executor with (channel, message) for every image.
        warnings: the node's throttled warning log (keys get this camera's name).
        say_once: the node's log-once function (keys get this camera's name).
        create_publisher: makes the publishers (default: the node's `create_publisher`; the managed node passes
            its `create_lifecycle_publisher`).
        subscribe: subscribe to the inputs now (the managed node subscribes on activation, `subscribe()`).
    """

    def __init__(self, node: Node, name: str, settings: NodeSettings,
                 on_image: Callable[["CameraChannel", Union[Image, CompressedImage]], None],
                 warnings: ThrottledLog, say_once: Callable[..., None],
                 create_publisher: Optional[Callable[..., Any]] = None, subscribe: bool = True) -> None:
        self.name = name
        self.stats = FrameStats()
        self._node = node
        self._settings = settings
        self._on_image = on_image
        self._warnings = warnings
        self._say_once = say_once
        self.camera = Camera(self, compressed=settings.input_transport == "compressed")
        self.image_sub: Any = None
        self.camera_info_sub: Any = None
        self.sparse: Optional[SparseInput] = None
        # The resolved input topics once subscribed (relative names until then), for messages.
        self.image_topic = self.topic("image/compressed" if settings.input_transport == "compressed" else "image")
        self.camera_info_topic = self.topic("camera_info")
        # The payload arrays of the large outputs, reused frame after frame (worker thread only).
        self._payloads = {name: ReusedByteArrays() for name in ("relative", "depth", "points")}
        self._create_publishers(settings, create_publisher or node.create_publisher)
        if subscribe:
            self.subscribe()

    # ----------------------------------------------------------------------------- topics
    def topic(self, relative: str) -> str:
        """`relative` under this camera's namespace (`depth/image` -> `front/depth/image`)."""
        return f"{self.name}/{relative}" if self.name else relative

    def _create_publishers(self, settings: NodeSettings, create_publisher: Callable[..., Any]) -> None:
        reliability = (ReliabilityPolicy.RELIABLE if settings.qos_output_reliability == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=settings.qos_output_depth, reliability=reliability)
        overrides = QoSOverridingOptions.with_default_policies()

        def publisher(msg_type: type, topic: str) -> Any:
            return create_publisher(msg_type, self.topic(topic), qos, qos_overriding_options=overrides)

        self.depth_pub = publisher(Image, "depth/image")
        self.info_pub = publisher(CameraInfo, "depth/camera_info")
        self.cloud_pub = publisher(PointCloud2, "points")
        self.colored_pub = publisher(Image, "depth/colored")
        self.relative_pub = publisher(Image, "depth/relative") if settings.model_type == "relative" else None
        self._publishers = {"relative": self.relative_pub, "depth": self.depth_pub, "depth_info": self.info_pub,
                            "points": self.cloud_pub, "colored": self.colored_pub}

    def subscribe(self) -> None:
        """Subscribe to this camera's image and CameraInfo topics (and say so, with the topics it publishes)."""
        settings, on_image = self._settings, self._on_image
        reliability = (ReliabilityPolicy.RELIABLE if settings.qos_input_reliability == "reliable"
                       else qos_profile_sensor_data.reliability)
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=settings.qos_input_depth,
            reliability=reliability,
            durability=qos_profile_sensor_data.durability,
        )
        overrides = QoSOverridingOptions.with_default_policies()
        if settings.input_transport == "compressed":
            msg_type, topic = CompressedImage, "image/compressed"
        else:
            msg_type, topic = Image, "image"
        self.image_sub = self._node.create_subscription(
            msg_type, self.topic(topic), lambda msg: on_image(self, msg), qos, qos_overriding_options=overrides)
        self.camera_info_sub = self._node.create_subscription(
            CameraInfo, self.topic("camera_info"), self._on_camera_info, qos, qos_overriding_options=overrides)
        if settings.sparse_input != "off":
            self.sparse = SparseInput(self._node, self.topic, self.name, settings, self._warnings)
            self.camera.sparse = self.sparse.track
        # Kept as text: the error paths name them without calling into rcl (which raises once they are destroyed).
        self.image_topic, self.camera_info_topic = self.image_sub.topic_name, self.camera_info_sub.topic_name
        self._node.get_logger().info(
            f"listening on {self.image_sub.topic_name} ({settings.input_transport}) and "
            f"{self.camera_info_sub.topic_name}; publishing {self.describe_outputs(settings)}")

    def unsubscribe(self) -> None:
        """Stop receiving this camera's inputs (the managed node's deactivation); the latest CameraInfo is kept."""
        for subscription in (self.image_sub, self.camera_info_sub):
            if subscription is not None:
                self._node.destroy_subscription(subscription)
        if self.sparse is not None:
            self.sparse.close()
        self.camera.sparse = None
        self.image_sub = self.camera_info_sub = self.sparse = None

    def destroy_publishers(self, destroy_publisher: Callable[[Any], Any]) -> None:
        """Destroy every publisher of this camera with `destroy_publisher` (the managed node's cleanup)."""
        for publisher in self._publishers.values():
            if publisher is not None:
                destroy_publisher(publisher)

    def describe_outputs(self, settings: NodeSettings) -> str:
        """The topics that carry messages with `settings` (`expected_outputs`), for the log; `depth/colored`
        is marked as computed only while subscribed."""
        topics = []
        for name in expected_outputs(settings):
            topic = self._publishers[name].topic_name
            topics.append(f"{topic} (while subscribed)" if name == "colored" else topic)
        return ", ".join(topics)

    # --------------------------------------------------------------------------- CameraInfo
    def _on_camera_info(self, msg: CameraInfo) -> None:
        """Keep the latest CameraInfo; images are never held back waiting for a matching stamp."""
        if self.camera.set_camera_info(msg):
            self._node.get_logger().info(
                f"first CameraInfo on {self.camera_info_topic}: {msg.width}x{msg.height}, "
                f"K = {np.asarray(msg.k).round(3).tolist()}")
        if distortion_is_nonzero(msg):
            self._say_once(f"{self.name}:distortion",
                           f"CameraInfo on {self.camera_info_topic} has non-zero distortion "
                           f"D = {np.asarray(msg.d).round(5).tolist()}: the input image is assumed to be rectified "
                           "(feed image_rect from image_proc for exact geometry); K is used as is", warn=True)

    # The camera's `CameraEvents` (worker thread): said once or throttled, and counted.
    def no_camera_info(self) -> None:
        """No CameraInfo yet: depth only (counted; said once)."""
        self.stats.cloud_skipped_for("no_camera_info")
        self._say_once(f"{self.name}:no_camera_info",
                       f"no CameraInfo received yet on {self.camera_info_topic}: publishing "
                       f"{self.depth_pub.topic_name} only; {self.info_pub.topic_name} and "
                       f"{self.cloud_pub.topic_name} start with the first CameraInfo", warn=True)

    def camera_info_scaled(self, info: Intrinsics, scaled: Intrinsics) -> None:
        """The CameraInfo is for another image size: K scaled (said once per pair of sizes)."""
        self._say_once(f"{self.name}:scaled_{info.width}x{info.height}_{scaled.width}x{scaled.height}",
                       f"CameraInfo{self._on_topic()} is {info.width}x{info.height} but images are "
                       f"{scaled.width}x{scaled.height}: scaling K to the image size "
                       f"(fx {info.fx:.1f} -> {scaled.fx:.1f})", warn=True)

    def camera_info_unusable(self, error: IntrinsicsError) -> None:
        """Count and say (throttled) that this camera's CameraInfo cannot give a cloud for the frame."""
        self.stats.cloud_skipped_for(f"camera_info_{error.reason}")
        self._warnings.warn(f"{self.name}:camera_info_{error.reason}",
                            f"CameraInfo{self._on_topic()} unusable ({error.reason}): "
                            f"{error.detail}; publishing depth without depth/camera_info and points")

    def _on_topic(self) -> str:
        """" on <camera_info topic>" when the node has several cameras (the single camera's messages stay short)."""
        return f" on {self.camera_info_topic}" if self.name else ""

    # ------------------------------------------------------------------------------- frames
    def frame_request(self, msg: Union[Image, CompressedImage], settings: NodeSettings) -> FrameRequest:
        """The frame's `FrameRequest` (`Camera.request`): the preview and the points only while someone subscribes
        to them. Raises InputRejected for an image that cannot be used."""
        return self.camera.request(msg, settings, colorize=self.colored_pub.get_subscription_count() > 0,
                                   cloud=self.wants_cloud())

    # ------------------------------------------------------------------------------ outputs
    def listened(self) -> set[str]:
        """The outputs someone subscribes to (a recorder counts): only they are built and published."""
        return {name for name, publisher in self._publishers.items()
                if publisher is not None and publisher.get_subscription_count() > 0}

    def wants_cloud(self) -> bool:
        """Someone subscribes to `points`: the frame's points are computed (back-projection) only then."""
        return self.cloud_pub.get_subscription_count() > 0

    def publish(self, header: Header, result: FrameResult, settings: NodeSettings) -> None:
        """Every output of one frame with the input image's header (stamp and frame_id)."""
        self.stats.filters_applied(result.valid_pixels, result.flying_pixels, self.camera.temporal)
        for name, fields in frame_outputs(result, settings.cloud_layout, self.listened(), self._payloads):
            self._publishers[name].publish(MESSAGE_BUILDERS[OUTPUT_MESSAGES[name]](header, fields))

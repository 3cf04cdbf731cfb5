"""The `depth_node` executable: camera image (+ CameraInfo) in, metric depth image, its CameraInfo,
an organized point cloud, a colorized preview and diagnostics out.

Only wiring lives here: subscription callbacks store the newest frame and return; a worker
thread (`FrameWorker`) decodes, runs `FrameProcessor` (model + geometry) and publishes.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from dav2_ros.conversions.errors import InputRejected
from dav2_ros.conversions.image_codec import bgr_to_image_fields, depth_to_image_fields, image_msg_to_array
from dav2_ros.conversions.compressed_codec import compressed_msg_to_array
from dav2_ros.conversions.pointcloud import pointcloud_fields
from dav2_ros.geometry.intrinsics import Intrinsics, IntrinsicsError, distortion_is_nonzero
from dav2_ros.node.diagnostics import diagnostic_array
from dav2_ros.node.pipeline import StartupError, build_estimator, describe_estimator, processing_settings, warm_up
from dav2_ros.node.frame_worker import FrameWorker
from dav2_ros.node.messages import depth_camera_info, image_msg, pointcloud_msg
from dav2_ros.node.parameters import NodeParameters
from dav2_ros.node.rejections import RejectionLog
from dav2_ros.node.settings import NODE_NAME, NodeSettings, SettingsError
from dav2_ros.node.stats import FrameStats
from dav2_ros.processing import FrameProcessor, FrameResult

# Seconds between two warnings of the same kind (bad input, bad CameraInfo, internal errors).
WARN_PERIOD_S = 5.0
DIAGNOSTICS_PERIOD_S = 1.0


@dataclass(frozen=True)
class PendingFrame:
    """An image as received, waiting for the worker (decoding happens on the worker, too)."""

    msg: Union[Image, CompressedImage]
    received: float  # time.monotonic() at arrival


class DepthNode(Node):
    """Depth Anything V2 on a camera stream; see the README for topics, parameters and QoS.

    Raises:
        StartupError: from the constructor, with a one-line reason (no weights, bad checkpoint,
            invalid parameter); `main` prints it and exits with code 1.
    """

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        try:
            self._setup()
        except BaseException:
            self._shutdown_worker()
            super().destroy_node()
            raise

    # ----------------------------------------------------------------------------- startup
    def _setup(self) -> None:
        self._worker: Optional[FrameWorker[PendingFrame]] = None
        self._camera_info_lock = threading.Lock()
        self._camera_info: Optional[CameraInfo] = None
        self._said_once: set[str] = set()
        self._stats = FrameStats()
        self._warnings = RejectionLog(self.get_logger(), WARN_PERIOD_S)
        try:
            self._params = NodeParameters(self, on_change=self._on_settings_changed)
        except (InvalidParameterValueException, InvalidParameterTypeException, SettingsError) as error:
            raise StartupError(f"invalid parameter: {_parameter_error_text(error)}") from None
        settings = self._params.settings
        self._log_configuration(settings)

        self._estimator, source = build_estimator(settings, self.get_logger())
        warm_up_s = warm_up(self._estimator, settings.input_size)
        self._model_info = describe_estimator(self._estimator, settings, source)
        self.get_logger().info(
            f"model ready: {self._model_info['model']} from {source} on {self._model_info['device']} "
            f"({self._model_info['precision']}, {self._model_info['preprocess']} preprocessing); "
            f"warm-up at input_size {settings.input_size} took {warm_up_s:.2f} s")
        self._processor_lock = threading.Lock()
        self._processor = FrameProcessor(self._estimator, processing_settings(settings))

        self._create_publishers(settings)
        self._worker = FrameWorker(self._process_frame, self._on_worker_error)
        self._worker.start()
        self._create_subscriptions(settings)
        self._diagnostics_timer = self.create_timer(
            DIAGNOSTICS_PERIOD_S, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _log_configuration(self, settings: NodeSettings) -> None:
        """The whole configuration once, in one line a user can paste into an issue."""
        params = " ".join(f"{name}={value!r}" for name, value in settings.as_params().items())
        self.get_logger().info(f"configuration: {params}")
        if settings.model_type == "relative" and not settings.publishes_metric_depth:
            self.get_logger().info(
                "relative model without relative_scale: publishing depth/relative (unitless inverse depth) only; "
                "depth/image, depth/camera_info and points need relative_scale/relative_shift")

    def _create_publishers(self, settings: NodeSettings) -> None:
        reliability = (ReliabilityPolicy.RELIABLE if settings.qos_output_reliability == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        output_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=settings.qos_output_depth,
                                reliability=reliability)
        overrides = QoSOverridingOptions.with_default_policies()
        self._depth_pub = self.create_publisher(Image, "depth/image", output_qos, qos_overriding_options=overrides)
        self._info_pub = self.create_publisher(CameraInfo, "depth/camera_info", output_qos,
                                               qos_overriding_options=overrides)
        self._cloud_pub = self.create_publisher(PointCloud2, "points", output_qos, qos_overriding_options=overrides)
        self._colored_pub = self.create_publisher(Image, "depth/colored", output_qos,
                                                  qos_overriding_options=overrides)
        self._relative_pub = None
        if settings.model_type == "relative":
            self._relative_pub = self.create_publisher(Image, "depth/relative", output_qos,
                                                       qos_overriding_options=overrides)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def _create_subscriptions(self, settings: NodeSettings) -> None:
        input_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=settings.qos_input_depth,
            reliability=qos_profile_sensor_data.reliability,
            durability=qos_profile_sensor_data.durability,
        )
        overrides = QoSOverridingOptions.with_default_policies()
        if settings.input_transport == "compressed":
            self._image_sub = self.create_subscription(
                CompressedImage, "image/compressed", self._on_image, input_qos, qos_overriding_options=overrides)
        else:
            self._image_sub = self.create_subscription(
                Image, "image", self._on_image, input_qos, qos_overriding_options=overrides)
        self._camera_info_sub = self.create_subscription(
            CameraInfo, "camera_info", self._on_camera_info, input_qos, qos_overriding_options=overrides)
        self.get_logger().info(
            f"listening on {self._image_sub.topic_name} ({settings.input_transport}) and "
            f"{self._camera_info_sub.topic_name}; publishing {self._depth_pub.topic_name}, "
            f"{self._info_pub.topic_name}, {self._cloud_pub.topic_name}, {self._colored_pub.topic_name}"
            + (f", {self._relative_pub.topic_name}" if self._relative_pub is not None else ""))

    # ------------------------------------------------------------------- executor callbacks
    def _on_image(self, msg: Union[Image, CompressedImage]) -> None:
        """Store the frame for the worker; never blocks (an unprocessed older frame is dropped)."""
        self._stats.frame_received()
        assert self._worker is not None
        self._worker.submit(PendingFrame(msg, time.monotonic()))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        """Keep the latest CameraInfo; images are never held back waiting for a matching stamp."""
        with self._camera_info_lock:
            first = self._camera_info is None
            self._camera_info = msg
        if first:
            self.get_logger().info(
                f"first CameraInfo on {self._camera_info_sub.topic_name}: {msg.width}x{msg.height}, "
                f"K = {np.asarray(msg.k).round(3).tolist()}")
        if distortion_is_nonzero(msg):
            self._say_once("distortion", f"CameraInfo on {self._camera_info_sub.topic_name} has non-zero distortion "
                           f"D = {np.asarray(msg.d).round(5).tolist()}: the input image is assumed to be rectified "
                           "(feed image_rect from image_proc for exact geometry); K is used as is", warn=True)

    def _on_settings_changed(self, settings: NodeSettings) -> None:
        """A runtime parameter change: the next frame uses the new processing settings."""
        with self._processor_lock:
            self._processor = FrameProcessor(self._estimator, processing_settings(settings))

    def _publish_diagnostics(self) -> None:
        dropped = self._worker.slot.dropped if self._worker is not None else 0
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id="")
        self._diagnostics_pub.publish(diagnostic_array(
            header, self.get_fully_qualified_name(), self._model_info["device"],
            self._stats.snapshot(dropped), self._model_info))

    # ------------------------------------------------------------------------ worker thread
    def _process_frame(self, frame: PendingFrame) -> None:
        """Decode, infer, back-project and publish one frame (runs on the worker thread)."""
        settings = self._params.settings
        msg = frame.msg
        try:
            if isinstance(msg, CompressedImage):
                image, color_order = compressed_msg_to_array(msg)
            else:
                image, color_order = image_msg_to_array(msg)
            height, width = image.shape[:2]
            intrinsics = self._intrinsics_for(width, height, settings)
            want_colored = self._colored_pub.get_subscription_count() > 0
            with self._processor_lock:
                processor = self._processor
            result = processor.process(image, color_order, intrinsics, colorize=want_colored)
        except InputRejected as error:  # bad encoding/size/data, an image too elongated for the model...
            self._stats.frame_rejected(error.reason)
            self._warnings.warn(error.reason, f"image rejected ({error.reason}): {error.detail}; nothing published "
                                "for this frame")
            return
        if self._worker is not None and self._worker.stopping:
            return
        self._publish(msg.header, result, image, color_order, settings)
        stamp_age = (self.get_clock().now() - Time.from_msg(msg.header.stamp)).nanoseconds * 1e-9
        self._stats.frame_published(time.monotonic() - frame.received, stamp_age,
                                    result.timings.get("inference"))

    def _intrinsics_for(self, width: int, height: int, settings: NodeSettings) -> Optional[Intrinsics]:
        """The latest CameraInfo's intrinsics at the image's size, or None (then no cloud, said once)."""
        with self._camera_info_lock:
            info = self._camera_info
        if info is None:
            if settings.publishes_metric_depth:
                self._stats.cloud_skipped_for("no_camera_info")
                self._say_once("no_camera_info",
                               f"no CameraInfo received yet on {self._camera_info_sub.topic_name}: publishing "
                               f"{self._depth_pub.topic_name} only; {self._info_pub.topic_name} and "
                               f"{self._cloud_pub.topic_name} start with the first CameraInfo", warn=True)
            return None
        try:
            intrinsics = Intrinsics.from_camera_info(info)
            if (intrinsics.width, intrinsics.height) != (width, height):
                scaled = intrinsics.scaled_to(width, height)
                self._say_once(f"scaled_{intrinsics.width}x{intrinsics.height}_{width}x{height}",
                               f"CameraInfo is {intrinsics.width}x{intrinsics.height} but images are "
                               f"{width}x{height}: scaling K to the image size (fx {intrinsics.fx:.1f} -> "
                               f"{scaled.fx:.1f})", warn=True)
                intrinsics = scaled
            return intrinsics
        except IntrinsicsError as error:
            self._stats.cloud_skipped_for(f"camera_info_{error.reason}")
            self._warnings.warn(f"camera_info_{error.reason}",
                                f"CameraInfo unusable ({error.reason}): {error.detail}; publishing depth without "
                                "depth/camera_info and points")
            return None

    def _publish(self, header: Header, result: FrameResult, image: np.ndarray, color_order: str,
                 settings: NodeSettings) -> None:
        """Every output with the input image's header (stamp and frame_id)."""
        if result.relative is not None and self._relative_pub is not None:
            self._relative_pub.publish(image_msg(header, depth_to_image_fields(result.relative)))
        if result.depth is not None:
            self._depth_pub.publish(image_msg(header, depth_to_image_fields(result.depth)))
        if result.depth_intrinsics is not None and result.depth is not None:
            self._info_pub.publish(depth_camera_info(header, result.depth_intrinsics))
        if result.xyz is not None and settings.publish_cloud:
            colors = None
            if settings.cloud_rgb:
                stride = settings.cloud_stride
                colors = image[::stride, ::stride]
                colors = colors[..., ::-1] if color_order == "rgb" else colors
                colors = np.ascontiguousarray(colors)
            self._cloud_pub.publish(pointcloud_msg(header, pointcloud_fields(result.xyz, colors)))
        if result.colored is not None:
            self._colored_pub.publish(image_msg(header, bgr_to_image_fields(result.colored)))

    def _on_worker_error(self, error: BaseException) -> None:
        """An unexpected error in one frame: count it, say what it was (throttled), keep going."""
        if self._skipped_for_memory(error):
            return
        self._stats.frame_rejected("internal_error")
        self._warnings.warn("internal_error", f"frame failed with {type(error).__name__}: {error}", error=True)

    def _skipped_for_memory(self, error: BaseException) -> bool:
        """Out of memory on this frame (CUDA, or the host allocator): count it as `out_of_memory`, say it
        (throttled), give the CUDA cache back and go on with the next frame. False for any other error."""
        from dav2_ros.model.device import is_out_of_memory, release_cached_memory  # torch is loaded by now

        if not is_out_of_memory(error):
            return False
        error.__traceback__ = None  # its frames hold the failed frame's tensors: free them before emptying the cache
        device = self._estimator.device
        release_cached_memory(device)
        self._stats.frame_rejected("out_of_memory")
        text = str(error).strip()
        cause = f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
        freed = "emptied the CUDA cache; " if device.type == "cuda" else ""
        self._warnings.warn("out_of_memory", f"frame skipped: out of memory on {device} at input_size "
                            f"{self._params.settings.input_size} ({cause}); {freed}carrying on with the next frame "
                            "(lower input_size, or use precision fp16 on CUDA, if this repeats)", error=True)
        return True

    # ----------------------------------------------------------------------------- helpers
    def _say_once(self, key: str, message: str, warn: bool = False) -> None:
        if key in self._said_once:
            return
        self._said_once.add(key)
        (self.get_logger().warning if warn else self.get_logger().info)(message)

    def _shutdown_worker(self) -> None:
        worker = getattr(self, "_worker", None)
        if worker is not None and not worker.stop(timeout=30.0):
            self.get_logger().warning("frame worker did not finish within 30 s")

    def destroy_node(self) -> None:
        """Stop and join the worker first, so nothing publishes on a destroyed node."""
        self._shutdown_worker()
        super().destroy_node()


def _parameter_error_text(error: Exception) -> str:
    """rclpy's parameter exception as one readable sentence (its reason, naming the parameter)."""
    message, name = str(error), ""
    if isinstance(error, (InvalidParameterValueException, InvalidParameterTypeException)):
        message, _, name = message.rpartition(": ")  # rclpy appends ": <parameter name>"
    message = message.split("Reason: ", 1)[-1]
    if name and name not in message:
        message = f"{name}: {message}"
    if isinstance(error, InvalidParameterTypeException) and "expecting type 'DOUBLE'" in message:
        message += " (write floating-point values with a decimal point, e.g. 20.0)"
    return message


def main(args: Optional[list[str]] = None) -> int:
    """Entry point of `ros2 run dav2_ros depth_node`: 0 on Ctrl-C/SIGTERM, 1 when the node cannot start."""
    rclpy.init(args=args)
    node: Optional[DepthNode] = None
    exit_code = 0
    try:
        node = DepthNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except StartupError as error:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {error}")
        exit_code = 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

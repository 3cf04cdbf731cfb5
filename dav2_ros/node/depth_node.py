"""The `depth_node` executable: camera image (+ CameraInfo) in, metric depth image, its CameraInfo,
an organized point cloud, a colorized preview and diagnostics out -- for one camera, or several
(`cameras` parameter) sharing one model.

Only wiring lives here: subscription callbacks store the newest frame of their camera and return; a
worker thread (`FrameWorker`) takes every waiting frame, decodes them, runs `FrameProcessor` (model +
geometry; same-size frames of several cameras as one batch) and publishes through each `CameraChannel`.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from dav2_ros.conversions.errors import InputRejected
from dav2_ros.conversions.image_codec import image_msg_to_array
from dav2_ros.conversions.compressed_codec import compressed_msg_to_array
from dav2_ros.geometry.intrinsics import IntrinsicsError
from dav2_ros.node.camera_channel import CameraChannel
from dav2_ros.pipeline.frame_outputs import expected_outputs
from dav2_ros.node.diagnostics import diagnostic_array
from dav2_ros.pipeline.builders import (StartupError, build_estimator, build_processor, describe_estimator,
                                    batches_cameras, prepare_estimator, warm_up, warn_unusable)
from dav2_ros.node.frame_worker import FrameWorker
from dav2_ros.node.parameters import NodeParameters
from dav2_ros.node.rejections import RejectionLog
from dav2_ros.pipeline.settings import NODE_NAME, NodeSettings, SettingsError
from dav2_ros.pipeline.processing import FrameRequest, FrameResult

# Seconds between two warnings of the same kind (bad input, bad CameraInfo, internal errors).
WARN_PERIOD_S = 5.0
DIAGNOSTICS_PERIOD_S = 1.0


@dataclass(frozen=True)
class PendingFrame:
    """An image as received, waiting for the worker (decoding happens on the worker, too)."""

    msg: Union[Image, CompressedImage]
    received: float  # time.monotonic() at arrival
    channel: CameraChannel


@dataclass
class DecodedFrame:
    """A frame the worker decoded: where it came from, and what `FrameProcessor` needs for it (its pixels,
    color order and camera intrinsics)."""

    pending: PendingFrame
    request: FrameRequest


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
        """Everything at construction: parameters, the model, the topics, the worker. The managed node
        (`managed_depth_node.py`) runs the same steps from its lifecycle transitions instead."""
        self._declare()
        self._load_model()
        self._open_channels(self.create_publisher)
        self._start_worker()
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self._create_diagnostics_timer()

    def _declare(self) -> None:
        """Parameters (checked; StartupError with the reason) and the configuration line."""
        self._worker: Optional[FrameWorker[PendingFrame]] = None
        self._said_once: set[str] = set()
        self._warnings = RejectionLog(self.get_logger(), WARN_PERIOD_S)
        self._processor_lock = threading.Lock()
        try:
            self._params = NodeParameters(self, on_change=self._on_parameters_changed)
        except (InvalidParameterValueException, InvalidParameterTypeException, SettingsError) as error:
            raise StartupError(f"invalid parameter: {_parameter_error_text(error)}") from None
        self._log_configuration(self._params.settings)
        self._outputs = expected_outputs(self._params.settings)

    def _on_parameters_changed(self, settings: NodeSettings) -> None:
        """A runtime parameter change: apply it (`_on_settings_changed`), and say so when it changes which topics
        carry messages (relative_scale given or set back to 0, publish_cloud switched)."""
        self._on_settings_changed(settings)
        outputs = expected_outputs(settings)
        if outputs != self._outputs:
            self._outputs = outputs
            for channel in getattr(self, "_channels", []):
                self.get_logger().info(f"parameters changed: now publishing {channel.describe_outputs(settings)}")

    def _load_model(self) -> None:
        """Load the checkpoint, prepare the estimator and the frame processor, warm them up (StartupError with
        the reason when the weights cannot be used)."""
        settings = self._params.settings
        self._estimator, source = build_estimator(settings, self.get_logger())
        self.get_logger().info(f"engine: {self._estimator.describe_engine()}")
        prepare_estimator(self._estimator, settings, self.get_logger())
        warn_unusable(self._estimator, settings, self.get_logger())
        self._processor = build_processor(self._estimator, settings)
        warm_up_s = warm_up(self._processor, settings)
        self._model_info = describe_estimator(self._estimator, settings, source)
        self.get_logger().info(
            f"model ready: {self._model_info['model']} from {source} on {self._model_info['device']} "
            f"({self._model_info['backend']} {self._model_info['precision']}, {self._model_info['preprocess']} "
            "preprocessing); "
            f"warm-up with {settings.warmup_width}x{settings.warmup_height} frames at input_size "
            f"{settings.input_size} took {warm_up_s:.2f} s")

    def _open_channels(self, create_publisher: Callable[..., Any], subscribe: bool = True) -> None:
        """One `CameraChannel` per camera, its publishers made by `create_publisher` (the node's, or the managed
        node's lifecycle publishers); subscribed now unless `subscribe` is false."""
        settings = self._params.settings
        self._channels = [CameraChannel(self, name, settings, self._on_image, self._warnings, self._say_once,
                                        create_publisher=create_publisher, subscribe=subscribe)
                          for name in (settings.cameras or ("",))]

    def _start_worker(self) -> None:
        """A fresh worker thread for the frames (one per activation in the managed node)."""
        self._worker = FrameWorker(None, self._on_worker_error, handle_batch=self._process_frames)
        self._worker.start()

    def _create_diagnostics_timer(self) -> Any:
        return self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics,
                                 clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _log_configuration(self, settings: NodeSettings) -> None:
        """The whole configuration once, in one line a user can paste into an issue."""
        params = " ".join(f"{name}={value!r}" for name, value in settings.as_params().items())
        self.get_logger().info(f"configuration: {params}")
        if settings.model_type == "relative" and not settings.publishes_metric_depth:
            self.get_logger().info(
                "relative model without relative_scale: publishing depth/relative (unitless inverse depth) only; "
                "depth/image, depth/camera_info and points need relative_scale/relative_shift")

    # ------------------------------------------------------------------- executor callbacks
    def _on_image(self, channel: CameraChannel, msg: Union[Image, CompressedImage]) -> None:
        """Store the frame for the worker; never blocks (an unprocessed older frame of this camera is dropped)."""
        channel.stats.frame_received()
        assert self._worker is not None
        self._worker.submit(PendingFrame(msg, time.monotonic(), channel), key=channel.name)

    def _on_settings_changed(self, settings: NodeSettings) -> None:
        """A runtime parameter change: the next frame uses the new processing settings."""
        processor = build_processor(self._estimator, settings)
        with self._processor_lock:
            self._processor = processor

    def _publish_diagnostics(self) -> None:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id="")
        snapshots = {}
        for channel in self._channels:
            dropped = self._worker.slot.dropped_by_key.get(channel.name, 0) if self._worker is not None else 0
            snapshots[channel.name] = channel.stats.snapshot(dropped)
        extra = {channel.name: channel.sparse.diagnostics() for channel in self._channels if channel.sparse}
        self._diagnostics_pub.publish(diagnostic_array(
            header, self.get_fully_qualified_name(), self._model_info["device"], snapshots, self._model_info, extra))

    # ------------------------------------------------------------------------ worker thread
    def _process_frames(self, frames: list[PendingFrame]) -> None:
        """Decode, infer, back-project and publish every waiting frame (one per camera; runs on the worker
        thread). When batching (`batches_cameras`), frames of one size go through the network together."""
        settings = self._params.settings
        decoded = [frame for frame in (self._decode(pending, settings) for pending in frames) if frame is not None]
        if not decoded:
            return
        with self._processor_lock:
            processor = self._processor
        batched = batches_cameras(settings, self._estimator.device)
        batches = [decoded] if batched else [[frame] for frame in decoded]
        for batch in batches:
            try:
                outcomes = processor.process_batch([frame.request for frame in batch])
            except Exception as error:  # noqa: BLE001 -- out of memory, a model error: these frames only
                self._frames_failed([frame.pending.channel for frame in batch], error)
                continue
            for frame, outcome in zip(batch, outcomes):
                self._finish(frame, outcome, settings)

    def _finish(self, frame: DecodedFrame, outcome: Union[FrameResult, Exception], settings: NodeSettings) -> None:
        """Publish one frame's result, or count and say why it has none."""
        channel = frame.pending.channel
        if isinstance(outcome, InputRejected):  # an image too elongated for the model...
            self._reject(channel, outcome)
        elif isinstance(outcome, IntrinsicsError):
            channel.intrinsics_refused(outcome)
        elif isinstance(outcome, Exception):
            self._frames_failed([channel], outcome)
        elif self._worker is None or not self._worker.stopping:
            try:
                self._publish(frame, outcome, settings)
            except Exception as error:  # noqa: BLE001 -- this frame only
                self._frames_failed([channel], error)

    def _decode(self, pending: PendingFrame, settings: NodeSettings) -> Optional[DecodedFrame]:
        """The frame's pixels and its camera's intrinsics at their size, or None when the image is refused."""
        msg = pending.msg
        channel = pending.channel
        try:
            if isinstance(msg, CompressedImage):
                image, color_order = compressed_msg_to_array(msg)
            else:
                image, color_order = image_msg_to_array(msg)
            height, width = image.shape[:2]
            intrinsics = channel.intrinsics_for(width, height, settings)
            want_colored = channel.colored_pub.get_subscription_count() > 0
        except InputRejected as error:  # bad encoding/size/data
            self._reject(channel, error)
            return None
        except Exception as error:  # noqa: BLE001 -- this frame only
            self._frames_failed([channel], error)
            return None
        align = channel.sparse.align_for(msg.header, width, height, intrinsics, settings) if channel.sparse else None
        request = FrameRequest(image, color_order, intrinsics, colorize=want_colored, align=align)
        return DecodedFrame(pending, request)

    def _reject(self, channel: CameraChannel, error: InputRejected) -> None:
        """Count and say (throttled, per camera and reason) that a frame was refused."""
        channel.stats.frame_rejected(error.reason)
        source = f" on {channel.image_sub.topic_name}" if channel.name else ""
        self._warnings.warn(f"{channel.name}:{error.reason}", f"image{source} rejected ({error.reason}): "
                            f"{error.detail}; nothing published for this frame")

    def _publish(self, frame: DecodedFrame, result: FrameResult, settings: NodeSettings) -> None:
        """The frame's outputs on its camera's topics, then its latency in that camera's counters."""
        pending = frame.pending
        header: Header = pending.msg.header
        pending.channel.publish(header, result, frame.request.image, frame.request.color_order, settings)
        stamp_age = (self.get_clock().now() - Time.from_msg(header.stamp)).nanoseconds * 1e-9
        pending.channel.stats.frame_published(time.monotonic() - pending.received, stamp_age,
                                              result.timings.get("inference"))

    def _on_worker_error(self, error: BaseException) -> None:
        """Last resort for an error that escaped `_process_frames` (its frames are unknown): every camera's."""
        self._frames_failed(self._channels, error)

    def _frames_failed(self, channels: list[CameraChannel], error: BaseException) -> None:
        """An unexpected error in these cameras' frames: count it per camera, say what it was (throttled), keep
        going. Out of memory also gives the CUDA cache back (`_out_of_memory_text`)."""
        from dav2_ros.model.device import is_out_of_memory  # torch is loaded by now

        if is_out_of_memory(error):
            reason, message = "out_of_memory", self._out_of_memory_text(error)
        else:
            reason, message = "internal_error", f"frame failed with {type(error).__name__}: {error}"
        for channel in channels:
            channel.stats.frame_rejected(reason)
        if len(self._channels) > 1:
            message += f" (cameras: {', '.join(channel.name for channel in channels)})"
        self._warnings.warn(reason, message, error=True)

    def _out_of_memory_text(self, error: BaseException) -> str:
        """Free what the failed frame held and the CUDA cache; the message that says so."""
        from dav2_ros.model.device import release_cached_memory

        error.__traceback__ = None  # its frames hold the failed frame's tensors: free them before emptying the cache
        device = self._estimator.device
        release_cached_memory(device)
        text = str(error).strip()
        cause = f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
        freed = "emptied the CUDA cache; " if device.type == "cuda" else ""
        return (f"frame skipped: out of memory on {device} at input_size {self._params.settings.input_size} "
                f"({cause}); {freed}carrying on with the next frame (lower input_size, or use precision fp16 on "
                "CUDA, if this repeats)")

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
    return spin_node(DepthNode, args)


def spin_node(node_type: Callable[[], Node], args: Optional[list[str]] = None) -> int:
    """Build `node_type`, spin it until Ctrl-C/SIGTERM (0), or say why it cannot start (1)."""
    rclpy.init(args=args)
    node: Optional[Node] = None
    exit_code = 0
    try:
        node = node_type()
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

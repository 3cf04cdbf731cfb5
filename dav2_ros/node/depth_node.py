"""The `depth_node` executable: camera image (+ CameraInfo) in, metric depth image, its CameraInfo,
an organized point cloud, a colorized preview and diagnostics out -- for one camera, or several
(`cameras` parameter) sharing one model.

Only wiring lives here: start-up, the cameras' channels, diagnostics, shutdown. Subscription callbacks store the
newest frame of their camera and return; a worker thread (`FrameWorker`) takes every waiting frame and hands them
to `FrameRound` (decoded by each camera, run through `FrameProcessor` -- model + geometry; same-size frames of
several cameras as one batch -- and published through each `CameraChannel`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, Optional, Union

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from dav2_ros.node.camera_channel import CameraChannel
from dav2_ros.pipeline.frame_outputs import expected_outputs
from dav2_ros.node import entry
from dav2_ros.node.diagnostics import diagnostic_array
from dav2_ros.pipeline.builders import (StartupError, build_estimator, build_processor, describe_estimator,
                                        batches_cameras, prepare_estimator, processing_settings, warm_up, warn_unusable)
from dav2_ros.node.failures import attempt, describe
from dav2_ros.node.frame_round import FrameRound, PendingFrame
from dav2_ros.node.frame_worker import FrameWorker
from dav2_ros.node.parameters import NodeParameters
from dav2_ros.node.throttled_log import ThrottledLog, log_to_stderr
from dav2_ros.node.startup_guard import GuardedLogger, StartupCancelled, StartupGuard, say
from dav2_ros.pipeline.settings import NODE_NAME, NodeSettings, SettingsError
from dav2_ros.pipeline.processing import FrameProcessor

# Seconds between two warnings of the same kind (bad input, bad CameraInfo, internal errors).
WARN_PERIOD_S = 5.0
DIAGNOSTICS_PERIOD_S = 1.0
# How long the frame worker may take to finish its step when a shutdown cuts the start-up short (a warm-up frame
# on a slow CPU takes longer: the process then ends without it, see `spin_node`).
CANCELLED_WORKER_WAIT_S = 0.5
# After a managed node is finalized: how long its executor still runs, so the shutdown transition's reply and
# transition event reach the lifecycle manager, before the process exits.
FINALIZED_LINGER_S = 0.3


class DepthNode(Node):
    """Depth Anything V2 on a camera stream; see the README for topics, parameters and QoS.

    Raises:
        StartupError: from the constructor, with a one-line reason (no weights, bad checkpoint,
            invalid parameter); `main` prints it and exits with code 1.
        StartupCancelled: a Ctrl-C/SIGTERM arrived while it started (`startup_guard`); `main` exits with code 0.

    Attributes:
        finished: the node can do nothing more (a managed node after its shutdown transition): `spin_node` ends.
    """

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.finished = False
        self._guard = StartupGuard(self.context.ok)
        try:
            with self._guard.busy("starting"):
                self._setup()
        except BaseException as error:
            cancelled = isinstance(error, StartupCancelled) or self._guard.requested
            # a warm-up cut short by a signal is not waited for (`spin_node` ends the process without it)
            self._shutdown_worker(timeout=CANCELLED_WORKER_WAIT_S if cancelled else 5.0)
            super().destroy_node()
            if cancelled and not isinstance(error, StartupCancelled):  # e.g. a publisher made on the dead context
                raise StartupCancelled(self._guard.current_step) from None
            raise

    # ----------------------------------------------------------------------------- startup
    def _setup(self) -> None:
        """Everything at construction: parameters, the worker and the model (warmed up on the worker), the topics.
        The managed node (`managed_depth_node.py`) runs the same steps from its lifecycle transitions instead."""
        self._declare()
        self._load_model()  # starts the worker: the warm-up runs on it
        self._open_channels(self.create_publisher)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self._create_diagnostics_timer()

    def _declare(self) -> None:
        """Parameters (checked; StartupError with the reason) and the configuration line."""
        self._worker: Optional[FrameWorker[PendingFrame]] = None
        self._said_once: set[str] = set()
        self._said_once_lock = threading.Lock()
        self._warnings = ThrottledLog(self.get_logger(), WARN_PERIOD_S)
        try:
            # A runtime change only stores the new settings (on the executor thread, with the log line of
            # `_on_parameters_changed`); the worker rebuilds the processor between batches (`_round_setup`).
            self._params = NodeParameters(self, on_change=self._on_parameters_changed)
        except (InvalidParameterValueException, InvalidParameterTypeException, SettingsError) as error:
            raise StartupError(f"invalid parameter: {_parameter_error_text(error)}") from None
        self._log_configuration(self._params.settings)
        self._outputs = expected_outputs(self._params.settings)

    def _on_parameters_changed(self, settings: NodeSettings) -> None:
        """A runtime parameter change (executor thread): the worker applies it before its next batch
        (`_processor_for_next_batch`); here only say so when it changes which topics carry messages
        (relative_scale given or set back to 0, publish_cloud switched)."""
        outputs = expected_outputs(settings)
        if outputs != self._outputs:
            self._outputs = outputs
            for channel in getattr(self, "_channels", []):
                self.get_logger().info(f"parameters changed: now publishing {channel.describe_outputs(settings)}")

    def _load_model(self) -> None:
        """Load the checkpoint, prepare the estimator and the frame processor, start the worker and warm them up on
        it (StartupError with the reason when the weights cannot be used or the warm-up fails)."""
        settings = self._params.settings
        guard = self._guard  # each long step gives way to a Ctrl-C/SIGTERM (StartupCancelled)
        logger = GuardedLogger(self.get_logger(), guard)
        guard.step("loading the model")
        self._estimator, source = build_estimator(settings, logger)
        guard.check()
        logger.info(f"engine: {self._estimator.describe_engine()}")
        guard.step("preparing the engine")
        prepare_estimator(self._estimator, settings, logger)
        warn_unusable(self._estimator, settings, logger)
        self._processor = build_processor(self._estimator, settings)
        self._processor_settings = settings  # what `_processor` was built for
        # The worker runs every frame, so it runs the warm-up too: cuBLAS/cuDNN handles are per thread (made on a
        # thread's first call, a failure there reads as CUBLAS_STATUS_NOT_INITIALIZED) and so is what torch.compile
        # and CUDA graphs record. A warm-up error is raised here and stops the start-up.
        guard.step("warming up")
        self._start_worker()
        warm_up_s = guard.wait(self._worker.submit_call(lambda: warm_up(self._processor, settings)))
        guard.step("opening the topics")
        self._model_info = describe_estimator(self._estimator, settings, source)
        logger.info(
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
        """The worker thread for the frames, unless one is running (the start-up's, which ran the warm-up; the
        managed node starts a fresh one on an activation after a deactivation)."""
        if self._worker is not None and not self._worker.stopping:
            return
        frame_round = FrameRound(self._round_setup, self._warnings, self._say_once, self.get_clock(),
                                 stopping=lambda: self._worker is not None and self._worker.stopping,
                                 device=lambda: self._estimator.device, settings=lambda: self._params.settings,
                                 several_cameras=lambda: len(self._channels) > 1)
        self._worker = FrameWorker(None, frame_round.worker_error, handle_batch=frame_round)
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

    def _publish_diagnostics(self) -> None:
        """The timer's callback: an error here is said (throttled) and costs this status only; raised, it would
        end the executor's spin and with it the node."""
        _, failure = attempt(self._publish_diagnostics_now)
        if failure is not None:
            self._warnings.error("diagnostics_failed", f"diagnostics not published: {describe(failure)}")

    def _publish_diagnostics_now(self) -> None:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id="")
        snapshots = {}
        for channel in self._channels:
            dropped = self._worker.slot.dropped_by_key.get(channel.name, 0) if self._worker is not None else 0
            snapshots[channel.name] = channel.stats.snapshot(dropped)
        sparse = [channel for channel in self._channels if channel.sparse]
        extra = {channel.name: channel.sparse.diagnostics() for channel in sparse}
        warnings = {channel.name: warning for channel in sparse if (warning := channel.sparse.warning())}
        model = dict(self._model_info, input_size=str(self._params.settings.input_size))  # live changes included
        self._diagnostics_pub.publish(diagnostic_array(
            header, self.get_fully_qualified_name(), self._model_info["device"], snapshots, model, extra, warnings))

    # ------------------------------------------------------------------------ worker thread
    def _round_setup(self) -> tuple[NodeSettings, FrameProcessor, bool]:
        """What one round of frames runs with: the settings, the processor built for them and whether cameras
        batch (every frame of the round uses these)."""
        processor, settings = self._processor_for_next_batch()
        return settings, processor, batches_cameras(settings, self._estimator.device)

    def _processor_for_next_batch(self) -> tuple[FrameProcessor, NodeSettings]:
        """The processor and the settings it was built for, rebuilt first when a parameter change made the node's
        settings differ. Runs on the worker between batches: the executor thread never touches the device (the
        worker may be capturing a CUDA graph), and a frame never pairs new settings (cloud_stride, cloud_rgb...)
        with a processor built for old ones. A change that leaves the processing alone keeps the processor (and
        its CUDA graphs)."""
        settings = self._params.settings
        if settings != self._processor_settings:
            if processing_settings(settings) != processing_settings(self._processor_settings):
                self._processor = build_processor(self._estimator, settings)
            self._processor_settings = settings
        return self._processor, self._processor_settings

    # ----------------------------------------------------------------------------- helpers
    def _say_once(self, key: str, message: str, warn: bool = False) -> None:
        """Log `message` the first time `key` comes up (a warning with `warn`, else info). Does not raise.

        The two severities log from two lines: rclpy refuses two severities from one call site."""
        with self._said_once_lock:
            if key in self._said_once:
                return
            self._said_once.add(key)
        try:
            if warn:
                self.get_logger().warning(message)
            else:
                self.get_logger().info(message)
        except Exception as failure:  # noqa: BLE001 -- said on stderr instead
            log_to_stderr("WARN" if warn else "INFO", message, failure)

    def _shutdown_worker(self, timeout: float = 30.0) -> None:
        worker = getattr(self, "_worker", None)
        if worker is not None and not worker.stop(timeout=timeout) and timeout > CANCELLED_WORKER_WAIT_S:
            self.get_logger().warning(f"frame worker did not finish within {timeout:g} s")

    def cancel_pending_work(self) -> None:
        """A shutdown cut the start-up (or configure) short: stop the worker without waiting for a warm-up frame
        (`destroy_node` then waits no longer either)."""
        self._worker_wait_s = CANCELLED_WORKER_WAIT_S
        self._shutdown_worker(timeout=self._worker_wait_s)

    def destroy_node(self) -> None:
        """Stop and join the worker first, so nothing publishes on a destroyed node."""
        self._shutdown_worker(timeout=getattr(self, "_worker_wait_s", 30.0))
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
    if isinstance(error, InvalidParameterTypeException) and "of type 'BOOL', expecting type 'STRING'" in message:
        message += ' (YAML reads a bare off, on, yes or no as a boolean: quote the word, e.g. "off")'
    return message


def main(args: Optional[list[str]] = None) -> int:
    """Entry point of `ros2 run dav2_ros depth_node`: 0 on Ctrl-C/SIGTERM, 1 when the node cannot start."""
    return spin_node(DepthNode, args)


def spin_node(node_type: Callable[[], DepthNode], args: Optional[list[str]] = None) -> int:
    """Build `node_type`, spin it until Ctrl-C/SIGTERM or until it is finished (a finalized managed node) (0), or
    say why it cannot start (1). A Ctrl-C/SIGTERM during the start-up (or a managed node's configure) ends it at
    once with one line and code 0 (`startup_guard`)."""
    rclpy.init(args=args)
    entry.ros_took_over()  # the executables' early signal handlers defer to rclpy's from here
    node: Optional[DepthNode] = None
    exit_code = 0
    cancelled = False
    try:
        node = node_type()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok() and not node.finished:
            executor.spin_once(timeout_sec=0.5)
        if node.finished:
            end = time.monotonic() + FINALIZED_LINGER_S
            while rclpy.ok() and time.monotonic() < end:
                executor.spin_once(timeout_sec=0.05)
            rclpy.logging.get_logger(NODE_NAME).info("finalized: exiting")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except StartupCancelled as error:
        say("INFO", f"shutdown requested while {error.step}: exiting")
        cancelled = True
    except StartupError as error:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {error}")
        exit_code = 1
    finally:
        if node is not None:
            if cancelled:
                node.cancel_pending_work()
            node.destroy_node()
        rclpy.try_shutdown()
    if cancelled:
        # The worker may still be inside a warm-up frame (torch code that cannot be interrupted): the interpreter's
        # exit would tear it down mid-call (an abort). The node is destroyed and nothing was published: end here.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

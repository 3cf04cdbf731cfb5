"""The `depth_node` executable: camera image (+ CameraInfo) in, metric depth image, its CameraInfo,
an organized point cloud, a colorized preview and diagnostics out -- for one camera, or several
(`cameras` parameter) sharing one model.

Only wiring lives here: subscription callbacks store the newest frame of their camera and return; a
worker thread (`FrameWorker`) takes every waiting frame, decodes them, runs `FrameProcessor` (model +
geometry; same-size frames of several cameras as one batch) and publishes through each `CameraChannel`.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar, Union

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from dav2_ros.errors import InputRejected
from dav2_ros.geometry.intrinsics import IntrinsicsError
from dav2_ros.node.camera_channel import CameraChannel
from dav2_ros.pipeline.frame_outputs import expected_outputs
from dav2_ros.node import entry
from dav2_ros.node.diagnostics import diagnostic_array
from dav2_ros.pipeline.builders import (StartupError, build_estimator, build_processor, describe_estimator,
                                        batches_cameras, prepare_estimator, processing_settings, warm_up, warn_unusable)
from dav2_ros.node.frame_worker import FrameWorker
from dav2_ros.node.parameters import NodeParameters
from dav2_ros.node.throttled_log import ThrottledLog, log_to_stderr
from dav2_ros.node.startup_guard import GuardedLogger, StartupCancelled, StartupGuard, say
from dav2_ros.pipeline.settings import NODE_NAME, NodeSettings, SettingsError
from dav2_ros.pipeline.processing import FrameProcessor, FrameRequest, FrameResult

# Seconds between two warnings of the same kind (bad input, bad CameraInfo, internal errors).
WARN_PERIOD_S = 5.0
DIAGNOSTICS_PERIOD_S = 1.0
# How long the frame worker may take to finish its step when a shutdown cuts the start-up short (a warm-up frame
# on a slow CPU takes longer: the process then ends without it, see `spin_node`).
CANCELLED_WORKER_WAIT_S = 0.5
# After a managed node is finalized: how long its executor still runs, so the shutdown transition's reply and
# transition event reach the lifecycle manager, before the process exits.
FINALIZED_LINGER_S = 0.3
T = TypeVar("T")


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

    def _publish_diagnostics(self) -> None:
        """The timer's callback: an error here is said (throttled) and costs this status only; raised, it would
        end the executor's spin and with it the node."""
        _, failure = _attempt(self._publish_diagnostics_now)
        if failure is not None:
            self._warnings.error("diagnostics_failed", f"diagnostics not published: {_describe(failure)}")

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
    def _process_frames(self, frames: list[PendingFrame]) -> None:
        """Decode, infer, back-project and publish every waiting frame (one per camera; runs on the worker
        thread). When batching (`batches_cameras`), frames of one size go through the network together.

        Every frame ends exactly once: published, or counted under one reason. Each step is attempted on its own
        (`_attempt`), so an error costs only the frames of that step, and is handled after its `except` block has
        exited; the handlers (`_reject`, `_frames_failed`) do not raise."""
        prepared, failure = _attempt(self._round_setup)
        if failure is not None:
            self._frames_failed([pending.channel for pending in frames], failure)
            return
        settings, processor, batched = prepared
        decoded = []
        for pending in frames:
            outcome, failure = _attempt(self._decode, pending, settings)
            if failure is not None:
                self._frames_failed([pending.channel], failure)
            elif isinstance(outcome, Exception):
                self._refused([pending.channel], outcome)
            elif outcome is not None:
                decoded.append(outcome)
        batches = collections.deque([decoded] if batched and decoded else [[frame] for frame in decoded])
        while batches:
            batch = batches.popleft()
            outcomes, failure = _attempt(processor.process_batch, [frame.request for frame in batch])
            if failure is None and len(outcomes) != len(batch):
                failure = RuntimeError(f"process_batch gave {len(outcomes)} outcomes for {len(batch)} frames")
            if failure is not None and len(batch) > 1:  # the batch's memory, or one frame's error: each alone
                self._batch_failed(batch, failure)
                batches.extendleft([frame] for frame in reversed(batch))
                continue
            if failure is not None:  # out of memory, a model error: this frame only
                self._frames_failed([frame.pending.channel for frame in batch], failure)
                continue
            for frame, outcome in zip(batch, outcomes):
                if isinstance(outcome, Exception):
                    self._refused([frame.pending.channel], outcome)
                elif self._worker is None or not self._worker.stopping:
                    _, failure = _attempt(self._publish, frame, outcome, settings)
                    if failure is not None:
                        self._frames_failed([frame.pending.channel], failure)

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

    def _decode(self, pending: PendingFrame, settings: NodeSettings) -> Union[DecodedFrame, InputRejected]:
        """The frame's request from its camera (pixels, intrinsics at their size, sparse fit, temporal filter), or
        why the image is refused (an `InputRejected`, returned so that it is handled outside this `except`)."""
        try:
            return DecodedFrame(pending, pending.channel.frame_request(pending.msg, settings))
        except InputRejected as error:  # bad encoding/size/data/aspect
            return error

    def _refused(self, channels: list[CameraChannel], error: BaseException) -> None:
        """A frame refused by a check (`InputRejected`: counted under its reason) or failed (anything else,
        including an `IntrinsicsError` from the processor: `_decode` hands it intrinsics already scaled to the image,
        so one would be a bug, and its CameraInfo reasons are counted as `cloud_skipped`, never as rejections)."""
        if isinstance(error, InputRejected) and not isinstance(error, IntrinsicsError):
            for channel in channels:
                self._reject(channel, error)
        else:
            self._frames_failed(channels, error)

    def _reject(self, channel: CameraChannel, error: InputRejected) -> None:
        """Count and say (throttled, per camera and reason) that a frame was refused. Does not raise."""
        channel.stats.frame_rejected(error.reason)
        source = f" on {channel.image_topic}" if channel.name else ""
        self._warnings.warn(f"{channel.name}:{error.reason}", f"image{source} rejected ({error.reason}): "
                            f"{error.detail}; nothing published for this frame")

    def _publish(self, frame: DecodedFrame, result: FrameResult, settings: NodeSettings) -> None:
        """The frame's outputs on its camera's topics (with the input header exactly as it came), then its latency
        in that camera's counters."""
        pending = frame.pending
        header: Header = pending.msg.header
        pending.channel.publish(header, result, settings)
        stamp_age = self._stamp_age(pending.channel, header.stamp)
        pending.channel.stats.frame_published(time.monotonic() - pending.received, stamp_age,
                                              result.timings.get("inference"))

    def _stamp_age(self, channel: CameraChannel, stamp) -> Optional[float]:
        """Seconds from the image stamp to now on the node's clock; None for a stamp that is not a valid time
        (negative seconds, nanosec >= 1e9: rclpy's Time refuses them), which is said once per camera."""
        sec, nanosec = int(stamp.sec), int(stamp.nanosec)
        if sec < 0 or nanosec >= 1_000_000_000:
            source = f" on {channel.image_topic}" if channel.name else ""
            self._say_once(f"{channel.name}:invalid_stamp",
                           f"image{source} has stamp sec={sec} nanosec={nanosec}, not a valid time (negative seconds "
                           "or nanosec >= 1e9): its outputs carry the header unchanged; stamp_age_p50_ms leaves such "
                           "frames out (latency is measured from arrival as always); said once", warn=True)
            return None
        return (self.get_clock().now().nanoseconds - (sec * 1_000_000_000 + nanosec)) * 1e-9

    def _on_worker_error(self, error: BaseException) -> None:
        """Last resort for an error that escaped `_process_frames`, which attempts every step on its own, so this
        is a bug in that guarding: said, not counted (its frames may have been counted already; none counts twice)."""
        self._warnings.error("worker_error", f"frame worker: {_describe(error)} escaped the frame handling; the "
                             "frames of that round may be missing from the counters")

    def _batch_failed(self, batch: list[DecodedFrame], error: BaseException) -> None:
        """A batch of several cameras' frames failed as a whole: say so (throttled); the caller runs each frame
        alone, so a batch too large for the device's memory, or one bad frame, costs no camera its frame. Out of
        memory first frees what the failed batch held. Does not raise."""
        if _is_out_of_memory(error):
            self._release_memory(error)  # drops the tracebacks too
        else:
            _drop_tracebacks(error)
        cameras = ", ".join(frame.pending.channel.name for frame in batch)
        self._warnings.warn("batch_failed", f"a batch of {len(batch)} frames (cameras: {cameras}) failed with "
                                            f"{_describe(error).splitlines()[0]}; running each frame alone")

    def _frames_failed(self, channels: list[CameraChannel], error: BaseException) -> None:
        """An unexpected error in these cameras' frames: count it per camera, say what it was (throttled), keep
        going. Out of memory also frees what the failed frame held and the CUDA cache (`_release_memory`).

        Call it outside the `except` block that caught `error` (`_attempt` returns the error for that): while a
        handler runs, Python 3.10 keeps the traceback -- and with it the failed frame's tensors -- alive, so the
        cache could not give their memory back. Does not raise."""
        out_of_memory = _is_out_of_memory(error)
        reason = "out_of_memory" if out_of_memory else "internal_error"
        for channel in channels:
            channel.stats.frame_rejected(reason)
        freed = self._release_memory(error) if out_of_memory else False
        try:
            message = (self._out_of_memory_text(error, freed) if out_of_memory
                       else f"frame failed with {_describe(error)}")
            if len(self._channels) > 1:
                message += f" (cameras: {', '.join(channel.name for channel in channels)})"
        except Exception as failure:  # noqa: BLE001 -- e.g. the model released by a lifecycle transition meanwhile
            message = f"frame {'skipped: out of memory' if out_of_memory else 'failed'} ({_describe(error)}; " \
                      f"{type(failure).__name__} while describing it)"
        self._warnings.error(reason, message)

    def _release_memory(self, error: BaseException) -> bool:
        """Free what the failed frame held (its traceback's frames and their tensors), then the CUDA cache; True
        when a CUDA cache was emptied. Does not raise."""
        _drop_tracebacks(error)
        try:
            from dav2_ros.engines.torch_runtime import device as device_module

            device = self._estimator.device
            device_module.release_cached_memory(device)
            return device.type == "cuda"
        except Exception:  # noqa: BLE001 -- the message says the cache was not emptied
            return False

    def _out_of_memory_text(self, error: BaseException, freed: bool) -> str:
        """The out-of-memory line: where, at which input size, the cause, and whether the CUDA cache was emptied."""
        cause = _describe(error).splitlines()[0]
        return (f"frame skipped: out of memory on {self._estimator.device} at input_size "
                f"{self._params.settings.input_size} ({cause}); {'emptied the CUDA cache; ' if freed else ''}"
                "carrying on with the next frame (lower input_size, or use precision fp16 on CUDA, if this repeats)")

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


def _attempt(action: Callable[..., T], *args: Any) -> tuple[Optional[T], Optional[Exception]]:
    """`(action(*args), None)`, or `(None, error)` when it raised: the error comes back after its `except` block
    has exited, so the caller handles it with no traceback pinned by a running handler."""
    try:
        return action(*args), None
    except Exception as error:  # noqa: BLE001 -- returned to the caller, which counts and says it
        return None, error


def _describe(error: BaseException) -> str:
    """`Type: message`, or `Type` for an empty message; never raises (an error's `__str__` may)."""
    name = type(error).__name__
    try:
        text = str(error).strip()
    except Exception as failure:  # noqa: BLE001
        return f"{name} (its message cannot be read: {type(failure).__name__})"
    return f"{name}: {text}" if text else name


def _is_out_of_memory(error: BaseException) -> bool:
    """`dav2_ros.engines.torch_runtime.device.is_out_of_memory`, False where it cannot tell (it reads the message)."""
    try:
        from dav2_ros.engines.torch_runtime.device import is_out_of_memory  # torch is loaded by now

        return is_out_of_memory(error)
    except Exception:  # noqa: BLE001
        return False


def _drop_tracebacks(error: Optional[BaseException]) -> None:
    """Clear the local variables of the frames in the tracebacks of `error` and its causes, and drop the
    tracebacks: what a failed frame's functions held (its tensors) can be freed now."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if error.__traceback__ is not None:
            traceback.clear_frames(error.__traceback__)
            error.__traceback__ = None
        error = error.__cause__ or error.__context__


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

"""The frame worker's round: every waiting frame (one per camera) decoded by its camera, run through the
`FrameProcessor` (same-size frames of several cameras as one batch) and published on its camera's topics.

Every frame ends exactly once: published, or counted under one reason and said (throttled). Each step is attempted
on its own (`failures.attempt`), so an error costs only the frames of that step and is handled after its `except`
block has exited; the handlers do not raise.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from rclpy.clock import Clock
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from dav2_ros.errors import InputRejected
from dav2_ros.geometry.intrinsics import IntrinsicsError
from dav2_ros.node.camera_channel import CameraChannel
from dav2_ros.node.failures import attempt, describe, drop_tracebacks, is_out_of_memory
from dav2_ros.node.throttled_log import ThrottledLog
from dav2_ros.pipeline.frames import FrameRequest, FrameResult
from dav2_ros.pipeline.processing import FrameProcessor
from dav2_ros.pipeline.settings import NodeSettings


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


class FrameRound:
    """The worker's `handle_batch`: one round of frames, from the pending messages to the published outputs.

    Args:
        prepare: the round's settings, the processor built for them and whether cameras batch (the node's: it
            rebuilds the processor between rounds after a parameter change).
        warnings: the node's throttled log; say_once: its log-once function (key, message, warn).
        clock: the node's clock (stamp ages).
        stopping: whether the worker is stopping (results are then not published).
        device: the estimator's device (out-of-memory messages, the CUDA cache).
        settings: the node's current settings (the input size in out-of-memory messages).
        several_cameras: whether the node has more than one camera (messages then name them).
    """

    def __init__(self, prepare: Callable[[], tuple[NodeSettings, FrameProcessor, bool]], warnings: ThrottledLog,
                 say_once: Callable[..., None], clock: Clock, stopping: Callable[[], bool],
                 device: Callable[[], Any], settings: Callable[[], NodeSettings],
                 several_cameras: Callable[[], bool]) -> None:
        self._prepare = prepare
        self._warnings = warnings
        self._say_once = say_once
        self._clock = clock
        self._stopping = stopping
        self._device = device
        self._settings = settings
        self._several_cameras = several_cameras

    def __call__(self, frames: list[PendingFrame]) -> None:
        """Decode, infer, back-project and publish every waiting frame (one per camera; runs on the worker
        thread). When batching (`batches_cameras`), frames of one size go through the network together.

        Every frame ends exactly once: published, or counted under one reason. Each step is attempted on its own
        (`attempt`), so an error costs only the frames of that step, and is handled after its `except` block has
        exited; the handlers (`_reject`, `_frames_failed`) do not raise."""
        prepared, failure = attempt(self._prepare)
        if failure is not None:
            self._frames_failed([pending.channel for pending in frames], failure)
            return
        settings, processor, batched = prepared
        decoded = []
        for pending in frames:
            outcome, failure = attempt(self._decode, pending, settings)
            if failure is not None:
                self._frames_failed([pending.channel], failure)
            elif isinstance(outcome, Exception):
                self._refused([pending.channel], outcome)
            elif outcome is not None:
                decoded.append(outcome)
        batches = collections.deque([decoded] if batched and decoded else [[frame] for frame in decoded])
        while batches:
            batch = batches.popleft()
            outcomes, failure = attempt(processor.process_batch, [frame.request for frame in batch])
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
                elif not self._stopping():
                    _, failure = attempt(self._publish, frame, outcome, settings)
                    if failure is not None:
                        self._frames_failed([frame.pending.channel], failure)

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
        return (self._clock.now().nanoseconds - (sec * 1_000_000_000 + nanosec)) * 1e-9

    def worker_error(self, error: BaseException) -> None:
        """Last resort for an error that escaped the round, which attempts every step on its own, so this
        is a bug in that guarding: said, not counted (its frames may have been counted already; none counts twice)."""
        self._warnings.error("worker_error", f"frame worker: {describe(error)} escaped the frame handling; the "
                             "frames of that round may be missing from the counters")

    def _batch_failed(self, batch: list[DecodedFrame], error: BaseException) -> None:
        """A batch of several cameras' frames failed as a whole: say so (throttled); the caller runs each frame
        alone, so a batch too large for the device's memory, or one bad frame, costs no camera its frame. Out of
        memory first frees what the failed batch held. Does not raise."""
        if is_out_of_memory(error):
            self._release_memory(error)  # drops the tracebacks too
        else:
            drop_tracebacks(error)
        cameras = ", ".join(frame.pending.channel.name for frame in batch)
        self._warnings.warn("batch_failed", f"a batch of {len(batch)} frames (cameras: {cameras}) failed with "
                                            f"{describe(error).splitlines()[0]}; running each frame alone")

    def _frames_failed(self, channels: list[CameraChannel], error: BaseException) -> None:
        """An unexpected error in these cameras' frames: count it per camera, say what it was (throttled), keep
        going. Out of memory also frees what the failed frame held and the CUDA cache (`_release_memory`).

        Call it outside the `except` block that caught `error` (`attempt` returns the error for that): while a
        handler runs, Python 3.10 keeps the traceback -- and with it the failed frame's tensors -- alive, so the
        cache could not give their memory back. Does not raise."""
        out_of_memory = is_out_of_memory(error)
        reason = "out_of_memory" if out_of_memory else "internal_error"
        for channel in channels:
            channel.stats.frame_rejected(reason)
        freed = self._release_memory(error) if out_of_memory else False
        try:
            message = (self._out_of_memory_text(error, freed) if out_of_memory
                       else f"frame failed with {describe(error)}")
            if self._several_cameras():
                message += f" (cameras: {', '.join(channel.name for channel in channels)})"
        except Exception as failure:  # noqa: BLE001 -- e.g. the model released by a lifecycle transition meanwhile
            message = f"frame {'skipped: out of memory' if out_of_memory else 'failed'} ({describe(error)}; " \
                      f"{type(failure).__name__} while describing it)"
        self._warnings.error(reason, message)

    def _release_memory(self, error: BaseException) -> bool:
        """Free what the failed frame held (its traceback's frames and their tensors), then the CUDA cache; True
        when a CUDA cache was emptied. Does not raise."""
        drop_tracebacks(error)
        try:
            from dav2_ros.engines.torch_runtime import device as device_module

            device = self._device()
            device_module.release_cached_memory(device)
            return device.type == "cuda"
        except Exception:  # noqa: BLE001 -- the message says the cache was not emptied
            return False

    def _out_of_memory_text(self, error: BaseException, freed: bool) -> str:
        """The out-of-memory line: where, at which input size, the cause, and whether the CUDA cache was emptied."""
        cause = describe(error).splitlines()[0]
        return (f"frame skipped: out of memory on {self._device()} at input_size "
                f"{self._settings().input_size} ({cause}); {'emptied the CUDA cache; ' if freed else ''}"
                "carrying on with the next frame (lower input_size, or use precision fp16 on CUDA, if this repeats)")

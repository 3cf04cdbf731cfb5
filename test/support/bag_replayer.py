"""Rosbag replay into the live node: `BagReplayer` publishes a bag's messages (read with `bags`) on their
topics with `/clock` (sim time) into a running node, and `OutputRecorder` records what the node publishes
(see their docstrings).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from bags import NS_PER_S, BagMessage, rclpy_message, stamp_ns
from node_harness import DdsClient


# ----------------------------------------------------------------------------------- ROS side
@dataclasses.dataclass(frozen=True)
class Received:
    """One message the node published, with its arrival time (time.monotonic())."""

    topic: str
    msg: Any
    arrived: float


class OutputRecorder:
    """Subscribes (reliable, deep history) to the node's output topics and keeps every message."""

    def __init__(self, client: DdsClient, topics: Mapping[str, type]) -> None:
        """`topics`: output topic -> rclpy message class."""
        self._lock = threading.Lock()
        self._received: dict[str, list[Received]] = {topic: [] for topic in topics}
        self._client = client
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=500, reliability=ReliabilityPolicy.RELIABLE)
        for topic, msg_type in topics.items():
            client.node.create_subscription(msg_type, topic, functools.partial(self._store, topic), qos)

    def _store(self, topic: str, msg: Any) -> None:
        arrived = time.monotonic()
        with self._lock:
            self._received[topic].append(Received(topic, msg, arrived))

    def messages(self, topic: str) -> list[Received]:
        """Everything received on `topic` so far, in arrival order."""
        with self._lock:
            return list(self._received[topic])

    def by_stamp(self, topic: str) -> dict[int, Received]:
        """Received messages of `topic` keyed by header stamp (ns); the first one wins."""
        found: dict[int, Received] = {}
        for item in self.messages(topic):
            found.setdefault(stamp_ns(item.msg), item)
        return found

    def wait_for_publishers(self, timeout: float = 60.0) -> None:
        """Until every recorded topic has a publisher (the node is up and discovered)."""
        for topic in self._received:
            self._client.wait_for_publishers(topic, timeout=timeout)


@dataclasses.dataclass
class ReplayReport:
    """Frames published into the node, frames it answered, and image-publish -> output-arrival latency."""

    frames_in: int
    frames_out: int
    latencies_ms: list[float]
    node_diagnostics: dict[str, str]

    @property
    def dropped(self) -> int:
        """Frames that got no output (dropped by the node for a newer one, or lost on best effort)."""
        return self.frames_in - self.frames_out

    def percentiles(self) -> dict[str, float]:
        """p50/p90/p99/max of the latency in ms (empty without outputs)."""
        if not self.latencies_ms:
            return {}
        values = np.asarray(self.latencies_ms)
        p50, p90, p99 = np.percentile(values, (50, 90, 99))
        return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(values.max())}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"frames_in": self.frames_in, "frames_out": self.frames_out, "dropped": self.dropped,
                "latency_ms": self.percentiles(), "node_diagnostics": self.node_diagnostics}


class BagReplayer:
    """Publishes bag messages on their topics into a running node, with `/clock` = bag time before each.

    The node must run with use_sim_time true. `camera_topic` is the bag's image topic: frames are
    counted and timed on it, and `output_topic` (the node's depth image) is what answers a frame.
    Two modes: `play_lockstep` (each frame waits for its answer: nothing dropped, for comparisons)
    and `play_stream` (paced by bag time like `ros2 bag play`: the node drops what it cannot keep up with).
    """

    def __init__(self, client: DdsClient, camera_topic: str, output_topic: str, recorder: OutputRecorder) -> None:
        self._client = client
        self._camera_topic = camera_topic
        self._output_topic = output_topic
        self._recorder = recorder
        self._publishers: dict[str, Any] = {}
        self._clock = client.publisher(Clock, "/clock")
        self._diagnostics: list[tuple[float, DiagnosticArray]] = []  # (arrival, message)
        client.node.create_subscription(DiagnosticArray, "/diagnostics",
                                        lambda msg: self._diagnostics.append((time.monotonic(), msg)), 10)
        self.published_at: dict[int, float] = {}  # camera frame stamp -> time.monotonic() at (last) publish
        self.resent = 0  # lockstep frames published again after going unanswered

    def _publisher(self, m: BagMessage) -> Any:
        if m.topic not in self._publishers:
            self._publishers[m.topic] = self._client.publisher(type(rclpy_message(m)), m.topic)
        return self._publishers[m.topic]

    def connect(self, messages: Iterable[BagMessage], timeout: float = 60.0, settle_s: float = 1.0) -> None:
        """Create the publishers of these messages' topics, wait until the node subscribes to the camera and
        publishes its outputs, then `settle_s` more: the node's side of discovery may lag ours, and a
        best-effort message sent before it completes is lost."""
        for m in messages:
            self._publisher(m)
        self._client.wait_for_subscribers(self._publishers[self._camera_topic], timeout=timeout)
        self._recorder.wait_for_publishers(timeout)
        time.sleep(settle_s)

    def publish(self, m: BagMessage) -> None:
        """`/clock` at the message's bag time, then the message."""
        publisher, msg = self._publisher(m), rclpy_message(m)
        self._clock.publish(Clock(clock=TimeMsg(sec=m.timestamp // NS_PER_S, nanosec=m.timestamp % NS_PER_S)))
        if m.topic == self._camera_topic:
            self.published_at[stamp_ns(m.msg)] = time.monotonic()
        publisher.publish(msg)

    def play_lockstep(self, messages: Iterable[BagMessage], timeout: float = 60.0, settle_s: float = 0.3,
                      resend_s: float = 10.0) -> None:
        """Publish in order; after each camera frame, wait for the node's answer with the frame's stamp.

        Other topics (CameraInfo) get `settle_s` to reach the node before the next frame. A frame
        unanswered after `resend_s` is published again (best-effort input may lose one).
        """
        unsettled = False
        for m in messages:
            if m.topic != self._camera_topic:
                self.publish(m)
                unsettled = True
                continue
            if unsettled:
                time.sleep(settle_s)
                unsettled = False
            stamp = stamp_ns(m.msg)
            deadline = time.monotonic() + timeout

            def answered() -> bool:
                return stamp in self._recorder.by_stamp(self._output_topic)

            while not answered():
                if time.monotonic() > deadline:
                    raise AssertionError(f"no {self._output_topic} for the frame stamped {stamp} within {timeout} s")
                if stamp in self.published_at:
                    self.resent += 1
                self.publish(m)
                _wait_quietly(answered, min(resend_s, max(0.0, deadline - time.monotonic())))

    def play_stream(self, messages: Iterable[BagMessage], rate: float = 1.0, drain_s: float = 10.0) -> ReplayReport:
        """Publish paced by bag time / `rate`, then wait `drain_s` for late answers; the report counts frames."""
        first_bag = first_wall = None
        frames: list[int] = []
        for m in messages:
            if first_bag is None:
                first_bag, first_wall = m.timestamp, time.monotonic()
            delay = first_wall + (m.timestamp - first_bag) / NS_PER_S / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.publish(m)
            if m.topic == self._camera_topic:
                frames.append(stamp_ns(m.msg))
        wanted = set(frames)

        def answered() -> set[int]:
            return wanted & set(self._recorder.by_stamp(self._output_topic))

        if frames:  # wait until the last frame is answered or nothing new arrives for a while
            last_count, quiet_since = -1, time.monotonic()
            while frames[-1] not in answered() and time.monotonic() - quiet_since < drain_s:
                count = len(answered())
                if count != last_count:
                    last_count, quiet_since = count, time.monotonic()
                time.sleep(0.05)
        outputs = self._recorder.by_stamp(self._output_topic)
        latencies = [(outputs[s].arrived - self.published_at[s]) * 1e3 for s in frames if s in outputs]
        last_output = max((item.arrived for item in outputs.values()), default=time.monotonic())
        return ReplayReport(len(frames), len(latencies), latencies, self.node_diagnostics(after=last_output))

    def node_diagnostics(self, after: float = 0.0, timeout: float = 5.0) -> dict[str, str]:
        """The key/values of the first /diagnostics status that arrived after `after` (time.monotonic()),
        waiting up to `timeout` s for one (the node publishes them at 1 Hz); empty if none came."""
        def fresh() -> dict[str, str] | None:
            for arrived, array in list(self._diagnostics):
                if arrived > after and array.status:
                    return {kv.key: kv.value for kv in array.status[0].values}
            return None

        _wait_quietly(lambda: fresh() is not None, timeout)
        return fresh() or {}


def _wait_quietly(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` for up to `timeout` s; whether it became true (no failure on timeout)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True

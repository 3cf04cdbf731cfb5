"""Rosbag replay into the live node: `BagReplayer` publishes a bag's messages (read with `bags`) on their
topics with `/clock` (sim time) into a running node, and `record_outputs` records what the node publishes
(node_harness.Recorder; see their docstrings).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from bags import NS_PER_S, BagMessage, rclpy_message, stamp_ns
from node_harness import DdsClient, Recorder


# Outputs are recorded reliable with a deep history: no answer is lost while the replay publishes.
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=500, reliability=ReliabilityPolicy.RELIABLE)


def record_outputs(client: DdsClient, topics: Mapping[str, type]) -> dict[str, Recorder]:
    """A recorder on each of the node's output topics (`topics`: topic -> rclpy message class), keeping every
    message."""
    return {topic: client.collect(msg_type, topic, OUTPUT_QOS) for topic, msg_type in topics.items()}


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

    def __init__(self, client: DdsClient, camera_topic: str, output_topic: str,
                 recorders: Mapping[str, Recorder]) -> None:
        """`recorders`: the node's outputs (`record_outputs`); `output_topic` is one of them."""
        self._client = client
        self._camera_topic = camera_topic
        self._output_topic = output_topic
        self._recorders = dict(recorders)
        self._answers = self._recorders[output_topic]
        self._publishers: dict[str, Any] = {}
        self._clock = client.publisher(Clock, "/clock")
        self._diagnostics = client.collect(DiagnosticArray, "/diagnostics", 10)
        self.published_at: dict[int, float] = {}  # camera frame stamp -> time.monotonic() at (last) publish
        self.resent = 0  # lockstep frames published again after going unanswered

    def _publisher(self, m: BagMessage) -> Any:
        if m.topic not in self._publishers:
            self._publishers[m.topic] = self._client.publisher(type(rclpy_message(m)), m.topic)
        return self._publishers[m.topic]

    def connect(self, messages: Iterable[BagMessage], timeout: float = 60.0, settle_s: float = 2.0) -> None:
        """Create the publishers of these messages' topics, wait until the node subscribes to the camera and
        publishes its outputs, then `settle_s` more: the node's side of discovery may lag ours, a best-effort
        message sent before it completes is lost, and the node builds an output only once it sees a subscriber
        (a clean-clone CI run under load, 1 s: a first frame's depth/camera_info never came)."""
        for m in messages:
            self._publisher(m)
        self._client.wait_for_subscribers(self._publishers[self._camera_topic], timeout=timeout)
        for topic in self._recorders:  # every recorded output has a publisher: the node is up and discovered
            self._client.wait_for_publishers(topic, timeout=timeout)
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
                return stamp in self._answers.by_stamp()

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
            return wanted & set(self._answers.by_stamp())

        if frames:  # wait until the last frame is answered or nothing new arrives for a while
            last_count, quiet_since = -1, time.monotonic()
            while frames[-1] not in answered() and time.monotonic() - quiet_since < drain_s:
                count = len(answered())
                if count != last_count:
                    last_count, quiet_since = count, time.monotonic()
                time.sleep(0.05)
        outputs = self._answers.by_stamp()
        latencies = [(outputs[s].received_monotonic - self.published_at[s]) * 1e3 for s in frames if s in outputs]
        last_output = max((item.received_monotonic for item in outputs.values()), default=time.monotonic())
        return ReplayReport(len(frames), len(latencies), latencies, self.node_diagnostics(after=last_output))

    def node_diagnostics(self, after: float = 0.0, timeout: float = 5.0, settle_s: float = 1.5) -> dict[str, str]:
        """The key/values of the latest /diagnostics status, once one has arrived more than `settle_s` after `after`
        (time.monotonic()), waiting up to `timeout` s for it (the node publishes them at 1 Hz); empty if none came.

        Not the first status after `after`: a status built before the node's last output can arrive after it on a
        loaded machine (a clean-clone CI run: frames_out 88 in the first status after the 98th output). The
        counters only grow, so the latest status once the node has gone quiet has its final figures."""
        def statuses() -> list[tuple[float, dict[str, str]]]:
            return [(arrival.received_monotonic, {kv.key: kv.value for kv in array.status[0].values})
                    for arrival, array in self._diagnostics.received() if array.status]

        _wait_quietly(lambda: any(when > after + settle_s for when, _ in statuses()), timeout)
        fresh = [values for when, values in statuses() if when > after]
        return fresh[-1] if fresh else {}


def _wait_quietly(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` for up to `timeout` s; whether it became true (no failure on timeout)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True

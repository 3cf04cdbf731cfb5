"""Counts how many raw frames from a reliable publisher reach the depth node (its `frames_in` counter in
/diagnostics) for a given `qos.input_reliability`: the measurement behind that parameter, shared by
test_node_input_qos.py (reliable: every frame) and test/campaigns/bench_input_reliability.py (both, side by side).

The node runs as a subprocess (its own DDS participant and interpreter, as in a deployment) on stand-in
weights at a small input size; the test side publishes gray bgr8 frames at a camera-like rate, then reads the
node's own count. Nothing is mocked: the frames cross Fast DDS on the loopback interface.
"""

from __future__ import annotations

import pathlib
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from node_harness import DdsClient, NodeProcess, wait_until

PUBLISHER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class Arrivals:
    """What one run sent and what the node counted."""

    reliability: str
    width: int
    height: int
    sent: int
    frames_in: int
    rate_hz: float


def _frames_in(messages: list, status_name: str) -> Optional[int]:
    """The node's latest `frames_in` for its single camera, from the /diagnostics messages seen so far."""
    for msg in reversed(messages):
        for status in msg.status:
            if status.name == status_name:
                values = {kv.key: kv.value for kv in status.values}
                return int(values["frames_in"])
    return None


def count_arrivals(reliability: str, weights_dir: pathlib.Path, frames: int = 100, width: int = 1280,
                   height: int = 720, rate_hz: float = 10.0, namespace: str = "/dav2_qos_probe",
                   settle_s: float = 5.0, timeout_s: float = 120.0) -> Arrivals:
    """Start the node with `qos.input_reliability: reliability`, publish `frames` raw bgr8 frames of
    width x height from a reliable publisher at `rate_hz`, and return the node's own count of received frames
    (read from /diagnostics once it has not changed for `settle_s` seconds after the last frame)."""
    params = {"allow_random_weights": True, "weights_dir": str(weights_dir), "input_size": 70, "device": "cpu",
              "backend": "torch", "precision": "fp32", "num_threads": 1, "warmup_width": 160, "warmup_height": 120,
              "qos.input_reliability": reliability}
    image_topic = f"{namespace}/image"
    status_name = f"{namespace}/depth_node: depth estimation"
    with NodeProcess(params=params, namespace=namespace) as node, DdsClient("dav2_qos_probe_client") as client:
        node.wait_for_output(r"model ready", timeout=timeout_s)
        diagnostics = client.collect(DiagnosticArray, "/diagnostics")
        publisher = client.publisher(Image, image_topic, PUBLISHER_QOS)
        client.wait_for_subscribers(publisher, timeout=timeout_s)
        wait_until(lambda: _frames_in(diagnostics.messages, status_name) is not None, timeout_s,
                   "the node's first /diagnostics")
        pixels = np.full((height, width, 3), 128, dtype=np.uint8)
        msg = Image(height=height, width=width, encoding="bgr8", step=width * 3)
        msg.data = pixels.tobytes()
        msg.header.frame_id = "probe_optical"
        start = time.monotonic()
        for index in range(frames):
            msg.header.stamp.sec, msg.header.stamp.nanosec = index, 0
            publisher.publish(msg)
            pause = start + (index + 1) / rate_hz - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        # The count is final once it has not moved for settle_s seconds (or has reached every frame).
        last, since = None, time.monotonic()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            count = _frames_in(diagnostics.messages, status_name)
            if count != last:
                last, since = count, time.monotonic()
            if count == frames or time.monotonic() - since > settle_s:
                break
            time.sleep(0.2)
        return Arrivals(reliability, width, height, frames, int(last or 0), rate_hz)

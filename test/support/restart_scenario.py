"""The kill/restart scenario: a node SIGKILLed while a publisher streams, and a new one started in its place."""

from __future__ import annotations

import dataclasses
import signal
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from camera_frame import Camera
from node_harness import Arrival, NodeProcess, wait_until
from node_rig import NodeRig
from rig_settings import OUTPUT_TIMEOUT_S, STARTUP_S
from stream_scenarios import Streamer


@dataclass
class RestartResult:
    """A node SIGKILLed while a publisher streams, and a new one started in its place."""

    first_node_outputs: int
    killed_exit_code: int
    kill_to_listening_s: float
    kill_to_first_output_s: float
    second_node_outputs: int
    second_node_log_clean: bool
    second_node_exit_code: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_restart(namespace: str, camera: Camera, rate_hz: float = 5.0, outputs_after: int = 5,
                params: Optional[Mapping[str, Any]] = None) -> RestartResult:
    """Start a node, stream at `rate_hz` (image + CameraInfo), SIGKILL the node mid-stream, start a new
    one with the same name while the stream goes on, and count its outputs until `outputs_after` arrived."""
    rig = NodeRig(namespace, params)
    streamer: Optional[Streamer] = None
    try:
        rig.start()
        streamer = Streamer(rig, camera, rate_hz, with_info=True).start()
        wait_until(lambda: len(rig.depth.arrivals) >= 3, OUTPUT_TIMEOUT_S, "3 outputs from the first node")
        first_outputs = len(rig.depth.arrivals)
        killed_at = time.monotonic()
        killed_wall = time.time()
        code = rig.stop_node(signal.SIGKILL, 30.0)
        rig.assert_clean_log()
        rig.process = NodeProcess(rig.params, namespace=namespace).start()
        rig.process.wait_for_output("listening on", STARTUP_S)
        listening = time.monotonic() - killed_at

        def new_outputs() -> list[Arrival]:  # clouds: the new node got CameraInfo too
            return [a for a in rig.points.arrivals if a.stamp[0] + a.stamp[1] * 1e-9 > killed_wall]

        wait_until(new_outputs, OUTPUT_TIMEOUT_S, "an output from the restarted node")
        first_output = new_outputs()[0].received - killed_wall
        wait_until(lambda: len(new_outputs()) >= outputs_after, OUTPUT_TIMEOUT_S,
                   f"{outputs_after} outputs from the restarted node")
        streamer.stop()
        second_outputs = len(new_outputs())
        clean = True
        try:
            rig.assert_clean_log()
        except AssertionError:
            clean = False
        exit_code = rig.stop_node(signal.SIGINT, 60.0)
        return RestartResult(first_outputs, code, listening, first_output, second_outputs, clean, exit_code)
    finally:
        if streamer is not None:
            streamer.stop()
        rig.close()

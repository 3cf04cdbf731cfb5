"""The node SIGKILLed while a camera streams at 5 Hz, and a new node started under the same name:
it discovers the running publisher, receives and processes frames (CameraInfo included), with no
traceback in either node's log and a clean exit on Ctrl-C."""

from __future__ import annotations

import signal

import pytest

from camera_frame import Camera
from restart_scenario import run_restart

pytestmark = pytest.mark.ros


def test_killed_node_is_replaced_while_the_publisher_keeps_running():
    result = run_restart("/dav2_robust_restart", Camera.tum(width=160), rate_hz=5.0, outputs_after=5)
    print(f"\nrestart: {result}")
    assert result.first_node_outputs >= 3
    assert result.killed_exit_code == -signal.SIGKILL
    assert result.second_node_outputs >= 5
    assert result.second_node_log_clean
    assert result.second_node_exit_code == 0
    assert result.kill_to_first_output_s < 120.0

"""Ctrl-C / SIGTERM while the node is still starting: the executable (`depth_node`, as `ros2 run` starts it) ends
soon with exit code 0, one line and no traceback, whatever it was doing -- importing, loading the model, converting
the engine, warming up, or (managed node) configuring -- and a managed node taken to finalized exits 0 by itself.

Each case is a real process; the moment is found from the node's own log lines (vitb on random weights makes every
step last seconds on a CPU, so the signal lands inside it). The seconds to exit are printed, and bounded loosely:
the bound says "it did not run the start-up to its end" (about 20-40 s here), not how fast it is."""

from __future__ import annotations

import signal
import time

import pytest

from lifecycle_client import CONFIGURE, SHUTDOWN_FROM, UNCONFIGURED, LifecycleClient
from node_harness import DdsClient, NodeProcess

pytestmark = pytest.mark.ros

SLOW = {"allow_random_weights": True, "encoder": "vitb", "device": "cpu", "num_threads": 1}
EXIT_BOUND_S = 10.0  # the start-up alone takes longer on this CPU: an exit within it was not a finished start-up
STARTUP_S = 120.0


def stop_and_measure(node: NodeProcess, sig: signal.Signals) -> tuple[int, float, str]:
    start = time.monotonic()
    node.send_signal(sig)
    code = node.wait(60.0)
    return code, time.monotonic() - start, node.output


def assert_clean_exit(code: int, seconds: float, output: str, step: str) -> None:
    print(f"\n{step}: exit code {code} after {seconds:.2f} s")
    assert code == 0, output
    assert "Traceback" not in output and "terminate called" not in output, output
    assert "did not finish" not in output and "Failed to publish" not in output, output
    assert "listening on" not in output, f"the start-up ran to its end before the signal took effect:\n{output}"
    assert f"shutdown requested while {step}" in output, output
    assert seconds < EXIT_BOUND_S, output


# (what the node is doing, the log line that marks its start, extra parameters)
MOMENTS = {
    "loading the model": ("configuration:", {}),
    "converting the engine": ("RANDOM WEIGHTS", {"backend": "openvino"}),  # a fresh cache: the conversion runs
    "warming up": ("engine:", {"backend": "torch", "input_size": 518, "warmup_width": 1280, "warmup_height": 720}),
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", MOMENTS, ids=[m.replace(" ", "_") for m in MOMENTS])
def test_a_signal_during_start_up_ends_the_node_at_once(tmp_path, sig, moment):
    marker, extra = MOMENTS[moment]
    env = {"DAV2_ENGINE_CACHE": str(tmp_path / "engines")}
    with NodeProcess({**SLOW, **extra}, namespace="/dav2_startup_signal", env=env, executable="depth_node") as node:
        node.wait_for_output(marker, STARTUP_S)
        code, seconds, output = stop_and_measure(node, sig)
    step = "loading the model" if moment == "converting the engine" else moment  # one step: weights + engine
    assert_clean_exit(code, seconds, output, step)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_one_second_after_start_ends_the_node_at_once(sig):
    with NodeProcess(SLOW, namespace="/dav2_startup_signal_1s", executable="depth_node") as node:
        time.sleep(1.0)
        code, seconds, output = stop_and_measure(node, sig)
    print(f"\n1 s after start: exit code {code} after {seconds:.2f} s")
    assert code == 0, output
    assert "Traceback" not in output and "terminate called" not in output, output
    assert "listening on" not in output and "shutdown requested while" in output, output
    assert seconds < EXIT_BOUND_S, output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_configure_ends_the_managed_node_at_once(sig):
    namespace = "/dav2_configure_signal"
    params = {**SLOW, "input_size": 518, "warmup_width": 1280, "warmup_height": 720}
    with NodeProcess(params, namespace=namespace, executable="managed_depth_node") as node, \
            DdsClient("dav2_configure_signal_client") as client:
        lifecycle = LifecycleClient(client, f"{namespace}/depth_node", STARTUP_S)
        assert lifecycle.get_state() == UNCONFIGURED
        lifecycle.request_change(CONFIGURE)  # not awaited: the node is stopped while it configures
        node.wait_for_output("engine:", STARTUP_S)
        code, seconds, output = stop_and_measure(node, sig)
        lifecycle.close()
    assert_clean_exit(code, seconds, output, "warming up")


def test_a_finalized_managed_node_exits_zero_by_itself():
    namespace = "/dav2_finalized_exit"
    with NodeProcess({"device": "cpu"}, namespace=namespace, executable="managed_depth_node") as node, \
            DdsClient("dav2_finalized_client") as client:
        lifecycle = LifecycleClient(client, f"{namespace}/depth_node", STARTUP_S)
        assert lifecycle.get_state() == UNCONFIGURED
        start = time.monotonic()
        assert lifecycle.change_state(SHUTDOWN_FROM[UNCONFIGURED]) is True  # the reply reaches the manager
        code = node.wait(30.0)
        seconds = time.monotonic() - start
        lifecycle.close()
    print(f"\nfinalized: exit code {code} {seconds:.2f} s after the shutdown request")
    assert code == 0, node.output
    assert "finalized: exiting" in node.output and "Traceback" not in node.output, node.output

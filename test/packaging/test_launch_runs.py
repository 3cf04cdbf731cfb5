"""The launch files run with the real launch API (a ROS 2 distro with this package built and sourced; launch and
launch_ros are not on PyPI, so these tests skip elsewhere, saying so):

- the replay launch ends within a few seconds of its player's exit (a stand-in `ros2` first on PATH plays the
  player: it prints its arguments, waits a second and exits 0);
- the depth launch ends when the node exits fatally (a missing checkpoint: exit code 1);
- two cameras get their inputs from the launch arguments (`cameras` + the `{camera}` placeholder): the node
  subscribes to /front/image_raw, /rear/image_raw and their camera_info topics;
- `managed:=true autostart:=true` brings the managed node to active.

Each launch runs in this process's main thread (launch installs signal handlers there) with a watcher thread
that ends it once the check is done or its deadline passes.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import stat
import threading
import time
from typing import Any, Callable, Optional

import pytest


def _share_dir() -> Optional[pathlib.Path]:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return pathlib.Path(get_package_share_directory("dav2_ros"))
    except (PackageNotFoundError, OSError):  # not built, or no ROS environment sourced (AMENT_PREFIX_PATH)
        return None


pytestmark = [
    pytest.mark.ros,
    pytest.mark.skipif(importlib.util.find_spec("launch") is None or importlib.util.find_spec("launch_ros") is None,
                       reason="launch/launch_ros are not installed (not on PyPI); they come with a ROS 2 distro"),
    pytest.mark.skipif(_share_dir() is None, reason="dav2_ros is not built and sourced (colcon build; source "
                                                    "install/setup.bash), so launch cannot find its share folder"),
]

DEADLINE_S = 180.0
NAMESPACE = "/dav2_launch_test"


def _params_file(tmp_path: pathlib.Path, **extra: Any) -> str:
    """A params file for a fast node on stand-in weights (no checkpoint download)."""
    params = {"allow_random_weights": "true", "weights_dir": f"'{tmp_path / 'no_weights'}'", "device": "cpu",
              "precision": "fp32", "input_size": 70, "num_threads": 1, "warmup_width": 64, "warmup_height": 48}
    params.update(extra)
    lines = "\n".join(f"    {name}: {value}" for name, value in params.items())
    path = tmp_path / "params.yaml"
    path.write_text(f"depth_node:\n  ros__parameters:\n{lines}\n")
    return str(path)


def _run_launch(name: str, arguments: dict[str, str], until: Optional[Callable[[], bool]] = None,
                deadline_s: float = DEADLINE_S) -> dict[str, Any]:
    """Run launch/<name> from the installed share folder; stop it once `until()` is true (checked every 0.2 s)
    or the deadline passes. Returns the return code, the seconds it ran, whether `until` was met and whether
    the deadline had to end it."""
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    service = LaunchService()
    service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(_share_dir() / "launch" / name)),
        launch_arguments=list(arguments.items()))]))
    outcome = {"met": False, "deadline": False}
    finished = threading.Event()

    def watch() -> None:
        stop_at = time.monotonic() + deadline_s
        while not finished.wait(0.2):
            if until is not None and not outcome["met"] and until():
                outcome["met"] = True
                service.shutdown()
            if time.monotonic() > stop_at:
                outcome["deadline"] = True
                service.shutdown()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    started = time.monotonic()
    watcher.start()
    try:
        outcome["code"] = service.run()
    finally:
        finished.set()
        watcher.join(5.0)
    outcome["seconds"] = time.monotonic() - started
    return outcome


def test_replay_ends_within_seconds_of_its_players_exit(tmp_path, monkeypatch):
    stand_in = tmp_path / "bin" / "ros2"
    stand_in.parent.mkdir()
    exited_at = tmp_path / "player_exited_at"
    stand_in.write_text(f"#!/bin/sh\necho \"stand-in player: ros2 $*\"\nsleep 1\n"
                        f"python3 -c 'import time; print(time.time())' > {exited_at}\nexit 0\n")
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{stand_in.parent}{os.pathsep}{os.environ['PATH']}")
    outcome = _run_launch("replay.launch.py", {"bag": str(tmp_path / "any_bag"), "play_delay": "1.0",
                                               "namespace": NAMESPACE, "params_file": _params_file(tmp_path)})
    ended_at = time.time()
    assert not outcome["deadline"], "the replay launch was still running at the deadline"
    assert exited_at.is_file(), "the stand-in player never ran"
    after_exit = ended_at - float(exited_at.read_text())
    print(f"\nreplay launch ended {after_exit:.2f} s after its player exited (return code {outcome['code']})")
    assert after_exit < 15.0


def test_depth_launch_ends_when_the_node_exits_fatally(tmp_path):
    outcome = _run_launch("depth.launch.py", {"namespace": NAMESPACE, "params_file": _params_file(tmp_path),
                                              "checkpoint": str(tmp_path / "missing.pth")})
    assert not outcome["deadline"], "the depth launch kept running after depth_node exited"


def test_two_cameras_get_their_inputs_from_the_launch_arguments(tmp_path):
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    expected = {"/front/image_raw", "/front/camera_info", "/rear/image_raw", "/rear/camera_info"}
    context = Context()
    rclpy.init(context=context)
    probe = Node("dav2_launch_probe", context=context)
    seen: set[str] = set()

    def subscribed() -> bool:
        try:
            topics = probe.get_subscriber_names_and_types_by_node("depth_node", NAMESPACE)
        except Exception:  # noqa: BLE001 -- the node is not discovered yet
            return False
        seen.update(name for name, _ in topics)
        return expected <= seen

    try:
        outcome = _run_launch("depth.launch.py", {
            "namespace": NAMESPACE, "params_file": _params_file(tmp_path), "cameras": "front,rear",
            "image_topic": "/{camera}/image_raw", "camera_info_topic": "/{camera}/camera_info"}, until=subscribed)
    finally:
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
    assert outcome["met"], f"depth_node subscribed to {sorted(seen)}, expected {sorted(expected)}"


def test_managed_autostart_reaches_active(tmp_path):
    import rclpy
    from lifecycle_msgs.msg import State
    from lifecycle_msgs.srv import GetState
    from rclpy.context import Context
    from rclpy.node import Node

    from rclpy.executors import SingleThreadedExecutor

    context = Context()
    rclpy.init(context=context)
    probe = Node("dav2_launch_lifecycle_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    client = probe.create_client(GetState, f"{NAMESPACE}/depth_node/get_state")

    def active() -> bool:
        if not client.service_is_ready():
            executor.spin_once(timeout_sec=0.1)
            return False
        future = client.call_async(GetState.Request())
        executor.spin_until_future_complete(future, timeout_sec=2.0)
        return future.done() and future.result().current_state.id == State.PRIMARY_STATE_ACTIVE

    try:
        outcome = _run_launch("depth.launch.py", {"namespace": NAMESPACE, "params_file": _params_file(tmp_path),
                                                  "managed": "true", "autostart": "true"}, until=active)
    finally:
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
    assert outcome["met"], "the managed node never reached active with autostart"

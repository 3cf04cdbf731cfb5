"""bag_to_depth as a user runs it (a subprocess): bad bags give one clear line and a non-zero exit, never a
traceback; Ctrl-C mid-run leaves a valid bag holding the frames done."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from bags import looped, read_bag, write_bag
from standin import offline_args, standin_params
from project_paths import PROJECT_DIR

FRAMES = 30


def tool_command(*args: str) -> list[str]:
    """The bag_to_depth command line (the module the console script runs)."""
    return [sys.executable, "-m", "dav2_ros.offline.bag_to_depth", *args]


def tool_env() -> dict[str, str]:
    """This environment with the project importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_DIR), env.get("PYTHONPATH")]))
    return env


def run_cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Run bag_to_depth to completion; output captured as text."""
    return subprocess.run(tool_command(*args), capture_output=True, text=True, env=tool_env(), timeout=timeout,
                          cwd=str(PROJECT_DIR))


@pytest.fixture()
def standin(tmp_path: pathlib.Path) -> list[str]:
    """Stand-in weights, CPU fp32, input_size 98."""
    empty = tmp_path / "no_weights"
    empty.mkdir()
    return offline_args(standin_params(empty))


def assert_one_clear_line(result: subprocess.CompletedProcess, pattern: str) -> None:
    """Exit 1, no traceback, and stderr's error line matches `pattern`."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("bag_to_depth: error: ")]
    assert len(errors) == 1, result.stderr
    assert re.search(pattern, errors[0]), errors[0]


def test_missing_camera_topic(tmp_path: pathlib.Path, bags_dir: pathlib.Path, standin: list[str]) -> None:
    bag = write_bag(tmp_path / "infos_only", read_bag(bags_dir / "fiducial_board_611_raw",
                                                      topics=["/raspicam_node/camera/camera_info"]))
    result = run_cli(str(bag), "-o", str(tmp_path / "out"), *standin)
    assert_one_clear_line(result, r"no camera image topic .* in bag .*infos_only; topics: "
                                  r"/raspicam_node/camera/camera_info \(CameraInfo\)")
    assert not (tmp_path / "out").exists()


def test_requested_topic_missing(tmp_path: pathlib.Path, bags_dir: pathlib.Path, standin: list[str]) -> None:
    result = run_cli(str(bags_dir / "tum_rgbd"), "-o", str(tmp_path / "out"), "--image-topic", "/camera/rgb", *standin)
    assert_one_clear_line(result, r"image topic /camera/rgb is not in bag .*/camera/color/image_raw \(Image\)")


@pytest.mark.parametrize("damage", ["truncated", "garbled", "not_a_bag"])
def test_corrupt_mcap(tmp_path: pathlib.Path, bags_dir: pathlib.Path, standin: list[str], damage: str) -> None:
    data = bytearray((bags_dir / "tum_rgbd" / "tum_rgbd_testready.mcap").read_bytes())
    if damage == "truncated":
        data = data[: len(data) * 2 // 3]
    elif damage == "garbled":  # the records after the magic (header, schemas, channels); rosbags does not
        for i in range(8, 2048):  # check chunk CRCs, so damage inside image bytes would go unnoticed
            data[i] ^= 0x5A
    else:
        data = bytearray(b"this is a text file, not a bag\n" * 10)
    broken = tmp_path / "broken.mcap"
    broken.write_bytes(bytes(data))
    result = run_cli(str(broken), "-o", str(tmp_path / "out"), *standin)
    assert_one_clear_line(result, r"cannot (open|read) bag .*broken\.mcap: \S")
    assert not (tmp_path / "out").exists()


def test_missing_input(tmp_path: pathlib.Path, standin: list[str]) -> None:
    result = run_cli(str(tmp_path / "nowhere"), *standin)
    assert_one_clear_line(result, r"input bag .*nowhere does not exist")


def test_sigint_mid_run_leaves_a_valid_bag_with_the_frames_done(tmp_path: pathlib.Path, bags_dir: pathlib.Path,
                                                                standin: list[str]) -> None:
    one_frame = read_bag(bags_dir / "tum_rgbd", topics=["/camera/color/image_raw", "/camera/color/camera_info"])
    long_bag = write_bag(tmp_path / "long", looped(one_frame, FRAMES, period_ns=100_000_000))
    output = tmp_path / "out"
    process = subprocess.Popen(tool_command(str(long_bag), "-o", str(output), *standin), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=tool_env(), cwd=str(PROJECT_DIR))
    progress: list[str] = []
    # tqdm redraws "bag_to_depth:  10%|...| 3/30 [...]" with carriage returns: read stderr char by char.
    reader = threading.Thread(target=lambda: progress.extend(iter(lambda: process.stderr.read(1), "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120.0
        while not re.search(rf"\b[1-9]\d*/{FRAMES}\b", "".join(progress)):
            assert process.poll() is None, f"exited early: {''.join(progress)}"
            assert time.monotonic() < deadline, f"no frame done within 120 s: {''.join(progress)}"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=60.0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5.0)
    stderr = "".join(progress)
    assert process.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    done = int(re.search(rf"INTERRUPTED after (\d+) of {FRAMES} frames", stdout).group(1))
    assert 1 <= done < FRAMES, stdout
    messages = read_bag(output)  # rosbags opens it: metadata and MCAP footer were written
    depth = [m for m in messages if m.topic == "/camera/color/depth/image"]
    assert len(depth) == done
    assert sum(m.topic == "/camera/color/points" for m in messages) == done
    inputs = [m for m in read_bag(long_bag, topics=["/camera/color/image_raw"])][:done]
    assert [m.timestamp for m in depth] == [m.timestamp for m in inputs]  # the first `done` frames, in order


# An import hook that makes `rosbags` look absent, as on a colcon/rosdep install (rosbags is PyPI-only).
_WITHOUT_ROSBAGS = """
import sys
class _NoRosbags:
    def find_spec(self, name, path=None, target=None):
        if name == "rosbags" or name.startswith("rosbags."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, _NoRosbags())
sys.argv = ["{prog}", "--help"]
from dav2_ros.offline.entry_points import {prog}
sys.exit({prog}())
"""


@pytest.mark.parametrize("prog", ["bag_to_depth", "depth_eval"])
def test_without_rosbags_the_tools_say_what_to_install(prog):
    result = subprocess.run([sys.executable, "-c", _WITHOUT_ROSBAGS.replace("{prog}", prog)], capture_output=True,
                            text=True, env=tool_env(), timeout=120, cwd=str(PROJECT_DIR))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"{prog}: error: needs the pure-Python `rosbags` package to read and write rosbag2 bags, which is not "
        "installed: `pip install rosbags` (it comes with `pip install dav2_ros`; a colcon/rosdep install does "
        "not provide it)")


@pytest.mark.parametrize("prog", ["bag_to_depth", "depth_eval"])
def test_with_rosbags_the_entry_points_run_the_tools(prog):
    code = f"import sys; sys.argv = ['{prog}', '--help']\nfrom dav2_ros.offline.entry_points import {prog}\n" \
           f"sys.exit({prog}())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=tool_env(),
                            timeout=120, cwd=str(PROJECT_DIR))
    assert result.returncode == 0 and "usage:" in result.stdout, result.stdout + result.stderr

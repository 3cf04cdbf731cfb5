"""The layering rule: geometry and conversions import neither rclpy nor torch (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

from conftest import PROJECT_DIR

MODULES = [
    "dav2_ros.geometry.intrinsics",
    "dav2_ros.geometry.backproject",
    "dav2_ros.geometry.colorize",
    "dav2_ros.conversions.errors",
    "dav2_ros.conversions.buffers",
    "dav2_ros.conversions.image_codec",
    "dav2_ros.conversions.compressed_codec",
    "dav2_ros.conversions.pointcloud",
    "dav2_ros.conversions.camera_info",
]


def test_geometry_and_conversions_stay_numpy_only():
    code = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in ('rclpy', 'torch', 'sensor_msgs', 'rosbags') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr

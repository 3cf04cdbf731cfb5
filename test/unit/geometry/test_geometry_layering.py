"""The layering rules, checked in a fresh interpreter: geometry and conversions import neither rclpy nor torch; the
weights catalog and cache import no torch either (the node names a missing checkpoint before torch loads)."""

from __future__ import annotations

import subprocess
import sys

from project_paths import PROJECT_DIR

MODULES = [
    "dav2_ros.geometry.intrinsics",
    "dav2_ros.geometry.backproject",
    "dav2_ros.geometry.colorize",
    "dav2_ros.geometry.sparse_scale",
    "dav2_ros.geometry.sparse_points",
    "dav2_ros.geometry.depth_filters",
    "dav2_ros.geometry.flying_pixels",
    "dav2_ros.geometry.temporal_filter",
    "dav2_ros.conversions.cloud_codec",
    "dav2_ros.conversions.errors",
    "dav2_ros.conversions.buffers",
    "dav2_ros.conversions.image_codec",
    "dav2_ros.conversions.compressed_codec",
    "dav2_ros.conversions.pointcloud",
]


WEIGHTS_MODULES = ["dav2_ros.weights.catalog", "dav2_ros.weights.cache"]


def imported_heavy_modules(modules: list[str]) -> str:
    """Which of rclpy, torch, sensor_msgs, rosbags importing `modules` pulls in, as printed by a fresh interpreter."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in ('rclpy', 'torch', 'sensor_msgs', 'rosbags') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.strip() + result.stderr


def test_geometry_and_conversions_stay_numpy_only():
    assert imported_heavy_modules(MODULES) == "[]"


def test_weights_catalog_and_cache_import_no_torch():
    assert imported_heavy_modules(WEIGHTS_MODULES) == "[]"

"""Shared test setup: DDS kept on loopback with a per-run domain, and paths to the test data."""

import os
import pathlib

# Must happen before any test imports rclpy: Fast DDS reads these at context creation.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
# One OpenVINO model cache for the whole run and the runs after it (tests that point DAV2_WEIGHTS_DIR at an empty
# folder keep it): the default CPU engine converts and compiles each network input shape once, not once per test.
os.environ.setdefault("DAV2_ENGINE_CACHE", os.path.expanduser("~/.cache/dav2_ros/engines"))

import sys  # noqa: E402

import pytest  # noqa: E402

# The helpers (node_harness, node_rig, bags, ...) are imported by name from test/support.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "support"))

from project_paths import BAGS_DIR, SHARED_DIR  # noqa: E402

# Shared fixtures (test/support/estimator_fixtures.py): the reference estimators, a parity frame, the estimator cache.
pytest_plugins = ("estimator_fixtures",)


@pytest.fixture(scope="session")
def bags_dir() -> pathlib.Path:
    """The real camera bags bundled with the tests."""
    return BAGS_DIR


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    """`../shared`, or skip the test when this machine has none."""
    if not SHARED_DIR.is_dir():
        pytest.skip("../shared is not present on this machine (parity fixtures and reference weights live there)")
    return SHARED_DIR


UNIT_DIR = pathlib.Path(__file__).resolve().parent / "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks the fast tier `unit`: every test under test/unit that does not start rclpy (no `ros` marker), so
    `pytest -m unit` runs the ROS-free checks alone."""
    for item in items:
        if UNIT_DIR in item.path.parents and item.get_closest_marker("ros") is None:
            item.add_marker(pytest.mark.unit)

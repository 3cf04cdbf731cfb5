"""`colcon build` of a copy of the package into a temporary folder, as on a ROS 2 distro: the package
is recognised as ament_python (a package.xml catkin_pkg rejects would silently make it plain
Python, without its ament index entry), and the install tree has the index entry, launch/config
files, package.xml and the `depth_node` executable, which starts from there."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from project_paths import PROJECT_DIR

PACKAGE_PATHS = ("package.xml", "setup.py", "setup.cfg", "resource", "dav2_ros", "launch", "config")
BIN_DIR = pathlib.Path(sys.executable).parent
COLCON = shutil.which("colcon", path=os.pathsep.join([str(BIN_DIR), os.environ.get("PATH", "")]))

pytestmark = [
    pytest.mark.colcon,
    pytest.mark.skipif(COLCON is None, reason="colcon is not installed (pip install colcon-common-extensions "
                                              "ros-ament-package)"),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> pathlib.Path:
    """A colcon workspace with a copy of the package in src/ (the working tree stays clean)."""
    root = tmp_path_factory.mktemp("colcon_ws")
    source = root / "src" / "dav2_ros"
    source.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in PACKAGE_PATHS:
        path = PROJECT_DIR / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    return root


def colcon(workspace: pathlib.Path, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=os.pathsep.join([str(BIN_DIR), os.environ.get("PATH", "")]))
    return subprocess.run([COLCON, "--log-base", str(workspace / "log"), *args], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_colcon_sees_an_ament_python_package(workspace):
    listing = colcon(workspace, "list", "--base-paths", "src")
    assert listing.returncode == 0, listing.stderr
    assert "dav2_ros" in listing.stdout and "(ros.ament_python)" in listing.stdout, listing.stdout


@pytest.fixture(scope="module")
def install_dir(workspace) -> pathlib.Path:
    build = colcon(workspace, "build", "--base-paths", "src", "--build-base", "build", "--install-base", "install")
    assert build.returncode == 0, f"colcon build failed:\n{build.stdout}\n{build.stderr}"
    return workspace / "install" / "dav2_ros"


def test_install_tree_has_the_ament_index_entry_share_files_and_executable(install_dir):
    assert (install_dir / "share/ament_index/resource_index/packages/dav2_ros").is_file()
    share = install_dir / "share/dav2_ros"
    assert (share / "package.xml").is_file()
    assert {p.name for p in (share / "launch").iterdir()} >= {"depth.launch.py", "replay.launch.py"}
    assert {p.name for p in (share / "config").iterdir()} >= {"depth.yaml", "indoor.yaml", "outdoor.yaml",
                                                              "relative.yaml"}
    for name in ("depth_node", "managed_depth_node"):
        executable = install_dir / "lib/dav2_ros" / name
        assert executable.is_file() and os.access(executable, os.X_OK), name
    # the launch files import their decisions from the installed package
    assert next(install_dir.glob("lib/python3*/site-packages/dav2_ros/bringup/launch_plan.py"))
    # package.xml's dependencies reached colcon (they are absent when it falls back to plain Python)
    dependencies = (install_dir / "share/colcon-core/packages/dav2_ros").read_text().split(":")
    assert {"rclpy", "sensor_msgs", "diagnostic_msgs", "lifecycle_msgs", "python3-torch"} <= set(dependencies)


@pytest.mark.ros
def test_installed_depth_node_starts_and_refuses_to_run_without_weights(install_dir, tmp_path):
    site_packages = next(install_dir.glob("lib/python3*/site-packages"))
    env = dict(os.environ, PYTHONPATH=str(site_packages))
    env.pop("DAV2_WEIGHTS_DIR", None)
    result = subprocess.run(
        [str(install_dir / "lib/dav2_ros/depth_node"), "--ros-args", "-p", f"weights_dir:={tmp_path}"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    imported = subprocess.run([sys.executable, "-c", "import dav2_ros; print(dav2_ros.__file__)"], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert imported.stdout.startswith(str(site_packages)), "the install tree's copy is not the one imported"
    assert "depth_anything_v2_metric_hypersim_vits.pth" in output and "Traceback" not in output

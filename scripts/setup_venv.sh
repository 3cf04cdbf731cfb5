#!/usr/bin/env bash
# Creates (or updates) the virtual environment dav2_ros runs in on a machine without a ROS 2 distro:
# CPU PyTorch pinned (an unpinned torch pulls a multi-GB CUDA build), the ROS 2 core from PyPI wheels,
# and this package installed editable with its test tools. Idempotent; prints the venv path last.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DAV2_VENV:-$PWD/.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
pip_install() { "$VENV/bin/pip" install --disable-pip-version-check -q "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
pip_install "torch==2.13.0"
pip_install -e ".[pypi-ros,test]"
"$VENV/bin/python" -c "import torch, rclpy, rclpy.lifecycle, lifecycle_msgs.srv, sensor_msgs.msg, cv2, rosbags, openvino" \
  || { echo "setup_venv: the environment in $VENV is incomplete (see pip output above)" >&2; exit 1; }
echo "$VENV"

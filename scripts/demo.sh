#!/usr/bin/env bash
# Sets everything up (scripts/setup_venv.sh) and runs the real depth_node on a bundled robot-camera bag:
# prints per-frame latency, writes demo_output/{depth_colored.png,depth.npy,points.ply}.
# Extra arguments go to scripts/demo.py, e.g. `scripts/demo.sh --input-size 308 --frames 10`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$(bash scripts/setup_venv.sh | tail -n 1)"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( 100 + RANDOM % 100 ))}"
exec "$VENV/bin/python" scripts/demo.py "$@"

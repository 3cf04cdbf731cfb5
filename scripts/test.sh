#!/usr/bin/env bash
# Sets everything up (scripts/setup_venv.sh) and runs the test suite with DDS kept on loopback.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k parity`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$(bash scripts/setup_venv.sh | tail -n 1)"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( 100 + RANDOM % 100 ))}"
exec "$VENV/bin/python" -m pytest -m "not slow" "$@"

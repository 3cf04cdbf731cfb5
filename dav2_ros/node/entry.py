"""The node executables (`ros2 run dav2_ros depth_node`, `managed_depth_node`): a Ctrl-C or SIGTERM while Python
still imports the node (rclpy, numpy, OpenCV: about a second) ends the process with one line and code 0, as it does
at any later moment (`startup_guard` while the node starts, rclpy's own handler once it spins).

Kept free of heavy imports: the handlers must be in place before the node's modules load.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _exit_while_importing(signum: int, frame) -> None:
    """Nothing exists yet (no ROS context, no model): say so and end at once."""
    sys.stderr.write(f"[INFO] [{time.time():.9f}] [depth_node]: shutdown requested while importing: exiting\n")
    sys.stderr.flush()
    os._exit(0)


def _run(module_name: str) -> int:
    """Import the node's module under the early handlers, put the previous ones back (rclpy.init installs its
    own), then run its `main`."""
    previous = {sig: signal.signal(sig, _exit_while_importing) for sig in _SIGNALS}
    module = importlib.import_module(module_name)
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    return module.main()


def depth_node() -> int:
    """`depth_node`: see `dav2_ros.node.depth_node.main`."""
    return _run("dav2_ros.node.depth_node")


def managed_depth_node() -> int:
    """`managed_depth_node`: see `dav2_ros.node.managed_depth_node.main`."""
    return _run("dav2_ros.node.managed_depth_node")

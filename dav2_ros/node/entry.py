"""The node executables (`ros2 run dav2_ros depth_node`, `managed_depth_node`): a Ctrl-C or SIGTERM before rclpy has
taken over the signals (while Python imports the node -- rclpy, numpy, OpenCV: about a second -- and while
`rclpy.init` runs) ends the process with one line and code 0, as it does at any later moment (`startup_guard` while
the node starts, rclpy's own handler once it spins).

Kept free of heavy imports: the handlers must be in place before the node's modules load. They stay installed:
rclpy's handler, installed by `rclpy.init`, calls the one it replaced (these) after its own work, so once
`ros_took_over` is called they do what Python's defaults did (SIGINT: KeyboardInterrupt; SIGTERM: nothing more) --
except while the node starts (`quiet_during_startup`): a KeyboardInterrupt raised inside a pybind11 call aborts the
process ("terminate called after throwing an instance of 'pybind11::error_already_set'"), and the start-up guard
sees the signal anyway (Python's wakeup fd, the context's state).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time

_took_over = False
_quiet = False


def _on_signal(signum: int, frame) -> None:
    """Before rclpy: nothing exists yet (no ROS context, no model), so say so and end at once. After: Python's
    default for SIGINT; SIGTERM is rclpy's alone."""
    if _took_over:
        if signum == signal.SIGINT and not _quiet:
            signal.default_int_handler(signum, frame)
        return
    say("INFO", "shutdown requested while starting rclpy: exiting")
    os._exit(0)


def say(severity: str, text: str) -> None:
    """One line on stderr in the ROS console format: before rclpy, or when the ROS logger cannot publish on a
    context that is down."""
    sys.stderr.write(f"[{severity}] [{time.time():.9f}] [depth_node]: {text}\n")
    sys.stderr.flush()


def ros_took_over() -> None:
    """rclpy.init has installed its signal handlers: from now on a signal is the node's to handle."""
    global _took_over
    _took_over = True


def quiet_during_startup(quiet: bool) -> None:
    """While true, SIGINT raises no KeyboardInterrupt (the start-up guard handles it)."""
    global _quiet
    _quiet = quiet


def _run(module_name: str) -> int:
    """Install the early handlers, import the node's module, run its `main`."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    return importlib.import_module(module_name).main()


def depth_node() -> int:
    """`depth_node`: see `dav2_ros.node.depth_node.main`."""
    return _run("dav2_ros.node.depth_node")


def managed_depth_node() -> int:
    """`managed_depth_node`: see `dav2_ros.node.managed_depth_node.main`."""
    return _run("dav2_ros.node.managed_depth_node")

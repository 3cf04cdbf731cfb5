"""Console-script entry points of the offline tools: check for `rosbags` before importing the tool, so an install
without it (a colcon/rosdep build: rosbags is PyPI-only) gets one line saying what to install, not a traceback."""

from __future__ import annotations

import sys

EXIT_ERROR = 1


def _has_rosbags(prog: str) -> bool:
    """True when `rosbags` imports; otherwise says how to get it on stderr."""
    try:
        import rosbags  # noqa: F401 -- only checking that it is there
    except ImportError:
        print(f"{prog}: error: needs the pure-Python `rosbags` package to read and write rosbag2 bags, which is not "
              "installed: `pip install rosbags` (it comes with `pip install dav2_ros`; a colcon/rosdep install does "
              "not provide it)", file=sys.stderr)
        return False
    return True


def bag_to_depth() -> int:
    """`bag_to_depth`: see dav2_ros.offline.bag_to_depth."""
    if not _has_rosbags("bag_to_depth"):
        return EXIT_ERROR
    from dav2_ros.offline.bag_to_depth import main

    return main()


def depth_eval() -> int:
    """`depth_eval`: see dav2_ros.offline.depth_eval."""
    if not _has_rosbags("depth_eval"):
        return EXIT_ERROR
    from dav2_ros.offline.depth_eval import main

    return main()


def dav2_bags() -> int:
    """`dav2_bags`: see dav2_ros.offline.fleet."""
    if not _has_rosbags("dav2_bags"):
        return EXIT_ERROR
    from dav2_ros.offline.fleet import main

    return main()

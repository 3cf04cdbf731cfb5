"""Moved to `dav2_ros.errors` (the bottom of the package: geometry and conversions both raise these); re-exported
here so code written against the old path keeps working."""

from dav2_ros.errors import MAX_PIXELS, MAX_SIDE, InputRejected, size_problem  # noqa: F401

#: Marks a module kept only for old import paths (see dav2_ros/model/estimator.py).
COMPATIBILITY_REEXPORT = True

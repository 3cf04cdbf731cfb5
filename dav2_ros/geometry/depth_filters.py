"""Depth a costmap can trust: the ROS-free filters of the depth path, in numpy.

This module path is a contract (external checks import these names from here):

- ``fit_inverse_depth(relative, sparse_depth) -> (scale, shift)``: metric scale from a sparse depth sensor,
  ``depth = 1 / (scale * relative + shift)`` (robust; see ``dav2_ros.geometry.sparse_scale``).
"""

from dav2_ros.geometry.sparse_scale import fit_inverse_depth

__all__ = ["fit_inverse_depth"]

"""Depth a costmap can trust: the flying-pixel mask (``flying_pixels.py``) and the temporal filter
(``temporal_filter.py``), in one place.

This module path is a contract (external checks import these names from here): ``edge_mask``, ``TemporalFilter``
and ``fit_inverse_depth(relative, sparse_depth) -> (scale, shift)``, the metric scale from a sparse depth sensor,
``depth = 1 / (scale * relative + shift)`` (robust; see ``dav2_ros.geometry.sparse_scale``).
"""

from dav2_ros.geometry.flying_pixels import (DEFAULT_EDGE_DILATION, DEFAULT_EDGE_THRESHOLD, edge_mask,
                                             remove_flying_pixels, valid_depth)
from dav2_ros.geometry.sparse_scale import fit_inverse_depth
from dav2_ros.geometry.temporal_filter import (DEFAULT_MAX_GAP_S, DEFAULT_TEMPORAL_MODE, MIN_SCALE_JITTER, SCALE_SAMPLE,
                                               TEMPORAL_MODES, TemporalFilter, TemporalMode, TemporalOptions)

__all__ = ["edge_mask", "remove_flying_pixels", "valid_depth", "TemporalFilter", "TemporalOptions", "fit_inverse_depth",
           "DEFAULT_EDGE_THRESHOLD", "DEFAULT_EDGE_DILATION", "DEFAULT_TEMPORAL_MODE", "DEFAULT_MAX_GAP_S",
           "TEMPORAL_MODES", "TemporalMode", "SCALE_SAMPLE", "MIN_SCALE_JITTER"]

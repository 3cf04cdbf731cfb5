"""Moved to `dav2_ros.engines.estimator` (the runtime lives with the engines; `model` is the network only). This
re-export keeps `from dav2_ros.model.estimator import DepthEstimator`, the path earlier READMEs gave, working."""

from dav2_ros.engines.estimator import DepthEstimator  # noqa: F401

#: Marks a module kept only for old import paths: the import-direction test leaves it out (nothing in the package
#: imports it).
COMPATIBILITY_REEXPORT = True

"""Shared estimator and frame fixtures (a pytest plugin, registered in test/conftest.py).

- `tum_frame`: the BGR camera frame of the bundled parity case tum_vits_308 (a real TUM RGB-D frame).
- `fast_vits`, `exact_vits`: the CPU reference estimator (`parity_cases.reference_vits`) with fast / exact
  preprocessing, one per test module.
- `cached_estimator(key, build)`: an estimator built once per key and kept until the end of the test module
  that asked for it: their networks and compiled engines (hundreds of MB each) are not kept for the rest of
  the session.

Torch and the package are imported only when a fixture is used, so the plugin costs nothing to the tests
that use none.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import numpy as np

    from dav2_ros.engines.estimator import DepthEstimator

_CACHED: dict[Hashable, DepthEstimator] = {}


def cached_estimator(key: Hashable, build: Callable[[], DepthEstimator]) -> DepthEstimator:
    """The estimator cached under `key` in this test module, built with `build()` the first time."""
    if key not in _CACHED:
        _CACHED[key] = build()
    return _CACHED[key]


@pytest.fixture(scope="module", autouse=True)
def _release_cached_estimators() -> Iterator[None]:
    """The cached estimators live as long as one module's tests."""
    yield
    _CACHED.clear()


@pytest.fixture(scope="module")
def tum_frame() -> np.ndarray:
    from parity_cases import case_image
    from project_paths import PARITY_DIR

    return case_image(PARITY_DIR / "tum_vits_308.npz")


@pytest.fixture(scope="module")
def fast_vits() -> DepthEstimator:
    from parity_cases import reference_vits

    return reference_vits("fast")


@pytest.fixture(scope="module")
def exact_vits() -> DepthEstimator:
    from parity_cases import reference_vits

    return reference_vits("exact")

"""The parity fixtures (made by the official code on the stand-in weights: bundled in test/fixtures/parity, more in
../shared/reference/cases) and the CPU reference estimator the unit tests compare the fast paths with."""

from __future__ import annotations

import pathlib

import numpy as np

from dav2_ros.engines.estimator import DepthEstimator
from project_paths import PARITY_DIR, SHARED_CASES_DIR

BUNDLED = sorted(PARITY_DIR.glob("*.npz"))
#: The shared cases not also bundled (empty where ../shared is absent).
SHARED = sorted(p for p in SHARED_CASES_DIR.glob("*.npz") if p.name not in {b.name for b in BUNDLED})


def load_case(path: pathlib.Path) -> dict:
    """The fields of one fixture as plain Python/numpy values."""
    with np.load(path) as z:
        return {"image_bgr": z["image_bgr"], "depth": z["depth"], "encoder": str(z["encoder"]),
                "input_size": int(z["input_size"]), "max_depth": float(z["max_depth"])}


def case_image(path: pathlib.Path) -> np.ndarray:
    """The BGR camera frame of a fixture (the bundled ones are real TUM RGB-D frames)."""
    with np.load(path) as z:
        return z["image_bgr"]


def reference_vits(preprocess: str) -> DepthEstimator:
    """The stand-in vits metric model (max_depth 20) in torch fp32 on the CPU, with this preprocessing."""
    return DepthEstimator.random(encoder="vits", model_type="metric", max_depth=20.0, device="cpu",
                                 precision="fp32", preprocess=preprocess, backend="torch")

"""Synthetic sparse-alignment scenarios on real ground-truth depth (numpy only), for the tests and the benchmark.

From a real GT depth map (e.g. the TUM RGB-D Kinect frame) it makes what a relative model and a sparse sensor
would give: a relative prediction that is affine in inverse depth with per-pixel noise, and sparse depths at
random pixels or along LiDAR-like rows, a fraction of them replaced by gross outliers. ``abs_rel_all`` scores a
metric depth over *all* valid GT pixels (a NaN prediction there counts as a 100 % error, so a fit that
invalidates pixels cannot look good).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The made-up affine map of the synthetic relative prediction: relative = A * inverse_depth + B.
RELATIVE_A = 2.5
RELATIVE_B = 0.3


@dataclass(frozen=True)
class Scenario:
    """A synthetic relative prediction and sparse depths for one GT frame."""

    name: str
    relative: np.ndarray  # HxW float32
    sparse: np.ndarray  # HxW float32 meters, NaN where no measurement
    outliers: np.ndarray  # HxW bool: sparse points replaced by gross outliers


def synthetic_relative(gt: np.ndarray, noise: float, rng: np.random.Generator,
                       a: float = RELATIVE_A, b: float = RELATIVE_B) -> np.ndarray:
    """``a * (1/gt) * (1 + noise * N(0,1)) + b``: affine in inverse depth with ``noise`` relative error per pixel
    (NaN where the GT is invalid; those pixels are filled with the median so the map is dense, like a network's)."""
    valid = np.isfinite(gt) & (gt > 0)
    inverse = np.where(valid, 1.0 / np.where(valid, gt, 1.0), np.nan)
    noisy = inverse * (1.0 + noise * rng.standard_normal(gt.shape))
    relative = a * noisy + b
    relative[~valid] = np.nanmedian(relative)
    return relative.astype(np.float32)


def random_pixels(gt: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """A sparse map with the GT at ``count`` random valid pixels (a ToF or a subsampled depth camera)."""
    rows, cols = np.nonzero(np.isfinite(gt) & (gt > 0))
    pick = rng.choice(rows.size, size=min(count, rows.size), replace=False)
    sparse = np.full(gt.shape, np.nan, np.float32)
    sparse[rows[pick], cols[pick]] = gt[rows[pick], cols[pick]]
    return sparse


def lidar_rows(gt: np.ndarray, rows: int = 16, column_step: int = 4) -> np.ndarray:
    """A sparse map with the GT along ``rows`` evenly spaced image rows, every ``column_step``-th pixel (the
    scan lines of a 16-beam LiDAR projected into the camera)."""
    height = gt.shape[0]
    sparse = np.full(gt.shape, np.nan, np.float32)
    picked = np.linspace(height * 0.1, height * 0.9, rows).round().astype(int)
    sparse[picked, ::column_step] = gt[picked, ::column_step]
    sparse[~(np.isfinite(sparse) & (sparse > 0))] = np.nan
    return sparse


def with_outliers(sparse: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``fraction`` of the sparse points replaced by gross outliers: half a uniform depth in [0.3, 12] m (a
    reflection, a wrong return), half 0.2-0.6x the true depth (a point of a nearer object seen by the sensor but
    not at that pixel by the camera). Returns the new map and the outlier mask."""
    rows, cols = np.nonzero(np.isfinite(sparse))
    count = int(round(fraction * rows.size))
    pick = rng.choice(rows.size, size=count, replace=False)
    out = sparse.copy()
    mask = np.zeros(sparse.shape, bool)
    half = count // 2
    r, c = rows[pick], cols[pick]
    out[r[:half], c[:half]] = rng.uniform(0.3, 12.0, half)
    out[r[half:], c[half:]] = sparse[r[half:], c[half:]] * rng.uniform(0.2, 0.6, count - half)
    mask[r, c] = True
    return out, mask


def scenarios(gt: np.ndarray, seed: int = 0, noise: float = 0.02, outliers: float = 0.1) -> list[Scenario]:
    """The two scenarios of issue 13: (a) 500 random pixels, (b) 16 LiDAR-like rows; each with ``outliers``
    gross outliers, on a relative prediction with ``noise`` per-pixel error."""
    rng = np.random.default_rng(seed)
    relative = synthetic_relative(gt, noise, rng)
    result = []
    for name, sparse in (("500 random pixels", random_pixels(gt, 500, rng)), ("16 LiDAR rows", lidar_rows(gt))):
        sparse, mask = with_outliers(sparse, outliers, rng)
        result.append(Scenario(name, relative, sparse, mask))
    return result


def abs_rel_all(depth: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """(AbsRel, valid fraction) over every valid GT pixel; a non-finite prediction there counts as error 1."""
    valid = np.isfinite(gt) & (gt > 0)
    pred = depth[valid].astype(np.float64)
    truth = gt[valid].astype(np.float64)
    finite = np.isfinite(pred)
    error = np.ones_like(truth)
    error[finite] = np.abs(pred[finite] - truth[finite]) / truth[finite]
    return float(error.mean()), float(finite.mean())


def depth_from_fit(relative: np.ndarray, scale: float, shift: float) -> np.ndarray:
    """``1 / (scale * relative + shift)`` (NaN where that inverse depth is not positive)."""
    inverse = scale * relative.astype(np.float64) + shift
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inverse > 0, 1.0 / inverse, np.nan).astype(np.float32)

"""Standard monocular-depth error metrics against ground truth (numpy only).

AbsRel = mean(|pred - gt| / gt), RMSE = sqrt(mean((pred - gt)^2)) in meters, and
delta<1.25 = fraction of pixels with max(pred/gt, gt/pred) < 1.25, over the valid pixels
(gt > 0 and finite, prediction finite). "Median aligned" first scales the prediction by
median(gt) / median(pred) over those pixels, the usual check for scale-free predictions.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

DELTA_THRESHOLD = 1.25


@dataclasses.dataclass(frozen=True)
class DepthMetrics:
    """AbsRel, RMSE (m) and delta<1.25 of one prediction (NaN when nothing could be compared)."""

    abs_rel: float
    rmse: float
    delta1: float

    @classmethod
    def nan(cls) -> DepthMetrics:
        """The metrics of a frame with no valid pixel."""
        return cls(math.nan, math.nan, math.nan)


@dataclasses.dataclass(frozen=True)
class FrameEvaluation:
    """Metrics of one frame, unaligned and median-scale aligned, with the pixels they cover."""

    valid_pixels: int
    total_pixels: int
    scale: float  # the median alignment factor applied for `aligned`
    unaligned: DepthMetrics
    aligned: DepthMetrics


def valid_mask(pred: np.ndarray, gt: np.ndarray, min_depth: float = 0.0, max_depth: float = math.inf) -> np.ndarray:
    """Pixels that count: gt finite and in (min_depth, max_depth], prediction finite."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    return np.isfinite(gt) & (gt > max(min_depth, 0.0)) & (gt <= max_depth) & np.isfinite(pred)


def depth_metrics(pred: np.ndarray, gt: np.ndarray) -> DepthMetrics:
    """AbsRel, RMSE and delta<1.25 of two 1-D arrays of valid pixels (gt > 0)."""
    if pred.size == 0:
        return DepthMetrics.nan()
    pred = pred.astype(np.float64)
    gt = gt.astype(np.float64)
    abs_rel = float(np.mean(np.abs(pred - gt) / gt))
    rmse = float(np.sqrt(np.mean((pred - gt) ** 2)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(pred / gt, np.where(pred > 0, gt / pred, np.inf))
    delta1 = float(np.mean(ratio < DELTA_THRESHOLD))
    return DepthMetrics(abs_rel, rmse, delta1)


def median_scale(pred: np.ndarray, gt: np.ndarray) -> float:
    """median(gt) / median(pred) over valid pixels; NaN when the prediction's median is not positive."""
    if pred.size == 0:
        return math.nan
    pred_median = float(np.median(pred))
    if not pred_median > 0.0:
        return math.nan
    return float(np.median(gt)) / pred_median


def evaluate_frame(
    pred: np.ndarray, gt: np.ndarray, min_depth: float = 0.0, max_depth: float = math.inf
) -> FrameEvaluation:
    """Metrics of one HxW prediction (meters) against HxW ground truth (meters, 0/NaN = no data)."""
    mask = valid_mask(pred, gt, min_depth, max_depth)
    p, g = pred[mask], gt[mask]
    scale = median_scale(p, g)
    aligned = depth_metrics(p * scale, g) if math.isfinite(scale) else DepthMetrics.nan()
    return FrameEvaluation(
        valid_pixels=int(mask.sum()),
        total_pixels=int(mask.size),
        scale=scale,
        unaligned=depth_metrics(p, g),
        aligned=aligned,
    )


def mean_metrics(frames: list[DepthMetrics]) -> DepthMetrics:
    """The per-frame mean of each metric, skipping frames where it is NaN (the usual benchmark average)."""

    def mean(values: list[float]) -> float:
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else math.nan

    return DepthMetrics(
        abs_rel=mean([f.abs_rel for f in frames]),
        rmse=mean([f.rmse for f in frames]),
        delta1=mean([f.delta1 for f in frames]),
    )

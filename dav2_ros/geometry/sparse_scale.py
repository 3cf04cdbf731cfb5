"""Metric scale from a sparse depth sensor: robust fits of the network's output to sparse metric depths.

A relative Depth Anything model predicts inverse depth up to an unknown scale and shift, so metric depth is
``1 / (scale * relative + shift)``; a few hundred metric depths from a LiDAR, a ToF or an RGB-D camera fix both.
The fit is done in inverse depth (where the model's ambiguity is affine) and minimizes the *relative* residual
``(scale * r + shift) * d - 1`` (the relative depth error, to first order), so near and far points weigh alike.

Sparse sensors have gross outliers (reflections, mixed pixels at edges, a LiDAR seeing past an object the
camera sees), so the fit is robust: MSAC over two-point samples (fixed seed: the same input gives the same fit),
then least squares on the inliers, repeated until the inlier set settles. Metric models get a scale-only fit
(``fit_depth_scale``, an opt-in correction). ``FitSmoother`` smooths successive fits without lag on a real change
and falls back to the last good fit for a while.

numpy only; no ROS, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

#: Fewest usable sparse points ``fit_inverse_depth`` accepts by default (two unknowns, robustly).
MIN_POINTS = 10
#: Relative depth error above which a sparse point is an outlier (10 %).
INLIER_THRESHOLD = 0.1
#: At most this many points enter the robust search (a deterministic subset); the final refits use all of them.
MAX_SEARCH_POINTS = 2048
#: Two-point hypotheses drawn by the robust search.
HYPOTHESES = 256
_REFITS = 4


@dataclass(frozen=True)
class SparseFit:
    """One frame's fit: ``metric inverse depth = scale * output + shift`` (relative models), or ``metric depth =
    scale * output`` with ``shift`` 0 (the scale-only fit of metric models).

    Attributes:
        scale, shift: the fitted parameters.
        points: usable sparse points offered to the fit (finite, positive depth; finite output).
        inliers: points within the inlier threshold of the final fit.
        residual: RMS relative depth error of the inliers.
        kind: "inverse_affine" (relative models) or "depth_scale" (metric models).
    """

    scale: float
    shift: float
    points: int
    inliers: int
    residual: float
    kind: Literal["inverse_affine", "depth_scale"] = "inverse_affine"

    def inverse_depth(self, output: np.ndarray) -> np.ndarray:
        """Metric inverse depth of a relative output under this fit (inverse_affine fits)."""
        return self.scale * output + self.shift


def sparse_pairs(output: np.ndarray, sparse_depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (output, depth) values, float64, at the pixels where ``sparse_depth`` is finite and positive and
    ``output`` finite. Both maps must have one shape (ValueError otherwise)."""
    output = np.asarray(output)
    sparse_depth = np.asarray(sparse_depth)
    if output.shape != sparse_depth.shape:
        raise ValueError(f"the output is {output.shape} but the sparse depth is {sparse_depth.shape}; "
                         "they must be registered pixel for pixel")
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(sparse_depth) & (sparse_depth > 0) & np.isfinite(output)
    return output[usable].astype(np.float64), sparse_depth[usable].astype(np.float64)


def fit_inverse_depth(relative: np.ndarray, sparse_depth: np.ndarray, *, min_points: int = MIN_POINTS,
                      inlier_threshold: float = INLIER_THRESHOLD) -> tuple[float, float]:
    """``(scale, shift)`` with ``depth = 1 / (scale * relative + shift)``, fitted robustly on the finite, positive
    pixels of ``sparse_depth`` (meters; NaN, 0 or negative = no measurement).

    Args:
        relative: HxW relative output of the network (affine-invariant inverse depth, larger = nearer).
        sparse_depth: HxW metric depths registered to ``relative``.
        min_points: fewest usable points (and inliers) accepted.
        inlier_threshold: relative depth error above which a point is an outlier.

    Raises:
        ValueError: different shapes, fewer than ``min_points`` usable points or inliers, or no fit with
            ``scale > 0`` (the data do not say "larger output = nearer").
    """
    values, depths = sparse_pairs(relative, sparse_depth)
    fit = robust_inverse_depth_fit(values, depths, min_points=min_points, inlier_threshold=inlier_threshold)
    return fit.scale, fit.shift


def robust_inverse_depth_fit(values: np.ndarray, depths: np.ndarray, *, min_points: int = MIN_POINTS,
                             inlier_threshold: float = INLIER_THRESHOLD, seed: int = 0) -> SparseFit:
    """The robust ``inverse depth = scale * value + shift`` fit on 1-D samples (see the module docstring).

    Raises:
        ValueError: as ``fit_inverse_depth``.
    """
    x, d = _checked_samples(values, depths, min_points)
    # Relative residual of (s, t) at each point: (s * x + t) * d - 1, linear in (s, t): rows [x d, d], target 1.
    design = np.stack([x * d, d], axis=1)
    s, t = _best_hypothesis(x, d, inlier_threshold, seed)
    if not (s > 0):
        raise ValueError("no fit with scale > 0 explains the sparse points (is the relative output "
                         "inverse depth, larger = nearer?)")
    params, inliers = _refit_on_inliers(design, np.array([s, t]), inlier_threshold, min_points)
    s, t = float(params[0]), float(params[1])
    if not (math.isfinite(s) and math.isfinite(t) and s > 0):
        raise ValueError(f"the fit is degenerate (scale {s}, shift {t}): do the sparse points span a range of depths?")
    residual = design[inliers] @ params - 1.0
    return SparseFit(s, t, x.size, int(inliers.sum()), float(np.sqrt(np.mean(residual ** 2))))


def fit_depth_scale(depth: np.ndarray, sparse_depth: np.ndarray, *, min_points: int = MIN_POINTS,
                    inlier_threshold: float = INLIER_THRESHOLD) -> SparseFit:
    """The scale-only correction of a metric model: ``sparse ≈ scale * depth``, fitted robustly on the pixels
    where both are finite and positive (``shift`` is 0).

    The model's own metric scale is kept where the sensor agrees; the fit is the median ratio, refined by least
    squares of the relative error on the points within ``inlier_threshold`` of it.

    Raises:
        ValueError: different shapes, or fewer than ``min_points`` usable points or inliers.
    """
    predicted, depths = sparse_pairs(depth, sparse_depth)
    return robust_depth_scale_fit(predicted, depths, min_points=min_points, inlier_threshold=inlier_threshold)


def robust_depth_scale_fit(predicted: np.ndarray, depths: np.ndarray, *, min_points: int = MIN_POINTS,
                           inlier_threshold: float = INLIER_THRESHOLD) -> SparseFit:
    """``fit_depth_scale`` on 1-D samples."""
    p, d = _checked_samples(predicted, depths, min_points)
    keep = p > 0
    p, d = p[keep], d[keep]
    if p.size < min_points:
        raise ValueError(f"{p.size} sparse point(s) with a positive predicted depth; at least {min_points} needed")
    ratio = p / d  # scale * ratio = 1 at a perfect point; relative residual = scale * ratio - 1
    scale = 1.0 / float(np.median(ratio))
    inliers = np.abs(scale * ratio - 1.0) <= inlier_threshold
    for _ in range(_REFITS):
        if inliers.sum() < min_points:
            raise ValueError(f"only {int(inliers.sum())} of {p.size} sparse points agree with the model's depth "
                             f"within {inlier_threshold:.0%}; at least {min_points} needed")
        r = ratio[inliers]
        scale = float(np.sum(r) / np.sum(r * r))  # least squares of scale * r - 1
        updated = np.abs(scale * ratio - 1.0) <= inlier_threshold
        if np.array_equal(updated, inliers):
            break
        inliers = updated
    residual = scale * ratio[inliers] - 1.0
    return SparseFit(scale, 0.0, p.size, int(inliers.sum()), float(np.sqrt(np.mean(residual ** 2))), "depth_scale")


def _checked_samples(values: np.ndarray, depths: np.ndarray, min_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Finite values with finite, positive depths, as float64; ValueError when fewer than ``min_points``."""
    x = np.asarray(values, dtype=np.float64).ravel()
    d = np.asarray(depths, dtype=np.float64).ravel()
    if x.shape != d.shape:
        raise ValueError(f"{x.size} output values but {d.size} depths")
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(x) & np.isfinite(d) & (d > 0)
    if usable.sum() < max(min_points, 2):
        raise ValueError(f"{int(usable.sum())} usable sparse point(s) (finite, positive depth); "
                         f"at least {max(min_points, 2)} needed")
    return x[usable], d[usable]


def _best_hypothesis(x: np.ndarray, d: np.ndarray, threshold: float, seed: int) -> tuple[float, float]:
    """MSAC over two-point hypotheses: the (scale, shift) with the lowest truncated squared relative residual."""
    rng = np.random.default_rng(seed)
    if x.size > MAX_SEARCH_POINTS:
        subset = rng.choice(x.size, MAX_SEARCH_POINTS, replace=False)
        x, d = x[subset], d[subset]
    first = rng.integers(0, x.size, HYPOTHESES)
    second = rng.integers(0, x.size, HYPOTHESES)
    y = 1.0 / d
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (y[first] - y[second]) / (x[first] - x[second])
        t = y[first] - s * x[first]
    ok = np.isfinite(s) & np.isfinite(t) & (s > 0)
    if not ok.any():
        # Every pair is degenerate or says "larger = farther": least squares on everything decides.
        design = np.stack([x * d, d], axis=1)
        params = np.linalg.lstsq(design, np.ones_like(x), rcond=None)[0]
        return float(params[0]), float(params[1])
    s, t = s[ok], t[ok]
    residual = (s[:, None] * x[None, :] + t[:, None]) * d[None, :] - 1.0
    cost = np.minimum(residual * residual, threshold * threshold).sum(axis=1)
    best = int(np.argmin(cost))
    return float(s[best]), float(t[best])


def _refit_on_inliers(design: np.ndarray, params: np.ndarray, threshold: float,
                      min_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Least squares on the inliers of ``params``, repeated until the inlier set settles."""
    inliers = np.abs(design @ params - 1.0) <= threshold
    for _ in range(_REFITS):
        if inliers.sum() < max(min_points, 2):
            raise ValueError(f"only {int(inliers.sum())} of {design.shape[0]} sparse points agree with the best "
                             f"fit within {threshold:.0%}; at least {max(min_points, 2)} needed")
        params, _, rank, _ = np.linalg.lstsq(design[inliers], np.ones(int(inliers.sum())), rcond=None)
        if rank < 2:
            raise ValueError("the sparse points all have the same output value: scale and shift cannot be separated")
        updated = np.abs(design @ params - 1.0) <= threshold
        if np.array_equal(updated, inliers):
            break
        inliers = updated
    return params, inliers


class FitSmoother:
    """Smooths successive fits of one camera over time, and stands in with the last good fit when a frame has none.

    A new fit is blended with the previous one (``smoothing`` = weight of the previous) only while both agree
    within ``agreement`` (median relative difference of their inverse depths at the new fit's sample values);
    a larger difference is a real change (the scene, the model's scale, the sensor) and the new fit replaces the
    old at once. The lag this adds is therefore at most ``smoothing * agreement`` in relative depth.

    Args:
        smoothing: weight of the previous fit, in [0, 1); 0 = every frame's own fit.
        hold_s: how long (seconds of stamp time after its sparse measurement) the last good fit is used for
            frames without a fit of their own.
        agreement: relative difference above which a new fit replaces the smoothed one instead of being blended.
    """

    def __init__(self, smoothing: float = 0.3, hold_s: float = 1.0, agreement: float = 0.05) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self.hold_s = hold_s
        self.agreement = agreement
        self._fit: Optional[SparseFit] = None
        self._stamp: Optional[float] = None

    def reset(self) -> None:
        """Forget the last fit (a new camera, a size change, a jump back in time)."""
        self._fit, self._stamp = None, None

    def update(self, fit: SparseFit, stamp: float, values: Optional[np.ndarray] = None) -> SparseFit:
        """The smoothed fit after a new one measured at ``stamp`` (seconds); ``values``: the outputs the new fit
        was made on (where the two fits are compared; without them, the fits are compared at the new fit's
        range of 0..1)."""
        previous = self._fit
        if previous is not None and self._stamp is not None and stamp < self._stamp:
            previous = None  # time went backwards (a bag replayed again): start over
        if previous is not None and previous.kind == fit.kind and self.smoothing > 0:
            at = np.asarray(values, dtype=np.float64) if values is not None and np.size(values) else \
                np.linspace(0.0, 1.0, 11)
            new_inverse = _inverse_of(fit, at)
            old_inverse = _inverse_of(previous, at)
            with np.errstate(divide="ignore", invalid="ignore"):
                difference = np.abs(old_inverse / new_inverse - 1.0)
            difference = difference[np.isfinite(difference)]
            if difference.size and float(np.median(difference)) <= self.agreement:
                w = self.smoothing
                fit = SparseFit(w * previous.scale + (1 - w) * fit.scale, w * previous.shift + (1 - w) * fit.shift,
                                fit.points, fit.inliers, fit.residual, fit.kind)
        self._fit, self._stamp = fit, stamp
        return fit

    def held(self, stamp: float) -> tuple[Optional[SparseFit], Optional[float]]:
        """The last good fit and its age at ``stamp`` when it is younger than ``hold_s``, else ``(None, age)``
        (``age`` None when there never was one)."""
        if self._fit is None or self._stamp is None:
            return None, None
        age = stamp - self._stamp
        if 0.0 <= age <= self.hold_s or (age < 0 and -age <= self.hold_s):
            return self._fit, age
        return None, age


def _inverse_of(fit: SparseFit, at: np.ndarray) -> np.ndarray:
    """The metric inverse depth a fit gives for outputs ``at`` (a depth-scale fit: 1 / (scale * depth))."""
    if fit.kind == "depth_scale":
        with np.errstate(divide="ignore"):
            return 1.0 / (fit.scale * at)
    return fit.scale * at + fit.shift

"""Metric scale from a sparse depth sensor, per frame and per camera (ROS-free; shared by the node and bag_to_depth).

For each frame, ``SparseAligner.conversion`` takes the sparse measurement chosen for it (the one closest in stamp,
if not older than ``max_age_s``), turns it into samples at the image's pixels (``geometry.sparse_points``), fits
the network's output to them (``geometry.sparse_scale``: scale and shift in inverse depth for relative models,
scale only for metric models), smooths the fit over time and returns the conversion the frame path applies.

When the frame has no usable measurement (absent, stale, wrong frame, wrong size, unreadable, too few points, no
fit) the reason is counted and reported (``on_problem``) and the frame falls back to the last good fit (while it is
younger than ``hold_s``), then to the fixed ``relative_scale``/``relative_shift`` (relative models; none given: no
metric depth for that frame, never a made-up one) or to the model's own scale (metric models).

Messages are duck-typed (rclpy or rosbags): a sensor_msgs/Image (32FC1 meters, 16UC1 millimeters) registered to the
camera image, or a sensor_msgs/PointCloud2 in the camera's optical frame (another frame only through ``transform``).
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from dav2_ros.conversions.cloud_codec import cloud_msg_to_xyz
from dav2_ros.errors import InputRejected
from dav2_ros.conversions.image_codec import depth_msg_to_array
from dav2_ros.geometry.intrinsics import Intrinsics
from dav2_ros.geometry.sparse_points import SparseSamples, project_points, samples_from_depth_image, transform_points
from dav2_ros.geometry.sparse_scale import FitSmoother, SparseFit, robust_depth_scale_fit, robust_inverse_depth_fit
from dav2_ros.pipeline.settings import NodeSettings, SparseKind

#: Sparse messages kept per camera to choose from by stamp.
BUFFER_LENGTH = 8
#: The topic each kind is read from (relative to the camera's namespace).
TOPICS = {"depth": "sparse_depth", "points": "sparse_points"}

#: ``transform(source_frame, target_frame, stamp) -> (rotation 3x3, translation 3)``, or raises SparseRejected.
Transform = Callable[[str, str, Any], tuple[np.ndarray, np.ndarray]]


class SparseRejected(Exception):
    """Why a frame's sparse measurement cannot be used: ``reason`` (a counter key) and ``detail`` (for the log)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_NODE_DEFAULTS = NodeSettings()


@dataclass(frozen=True)
class SparseOptions:
    """The ``sparse.*`` parameters (see ``settings.py``; the defaults are the node's)."""

    input: SparseKind = _NODE_DEFAULTS.sparse_input
    max_age_s: float = _NODE_DEFAULTS.sparse_max_age
    min_points: int = _NODE_DEFAULTS.sparse_min_points
    inlier_threshold: float = _NODE_DEFAULTS.sparse_inlier_threshold
    smoothing: float = _NODE_DEFAULTS.sparse_smoothing
    hold_s: float = _NODE_DEFAULTS.sparse_hold
    metric_correction: bool = _NODE_DEFAULTS.sparse_metric_correction

    @classmethod
    def from_settings(cls, settings: NodeSettings) -> "SparseOptions":
        """From a ``NodeSettings``."""
        return cls(settings.sparse_input, settings.sparse_max_age, settings.sparse_min_points,
                   settings.sparse_inlier_threshold, settings.sparse_smoothing, settings.sparse_hold,
                   settings.sparse_metric_correction)

    def applies_to(self, model_type: str) -> bool:
        """Whether frames of this model type are aligned: relative models always, metric ones when opted in."""
        return self.input != "off" and (model_type == "relative" or self.metric_correction)


def stamp_seconds(stamp: Any) -> float:
    """A builtin_interfaces/Time as float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


@dataclass(frozen=True)
class Measurement:
    """One sparse message and its header stamp in seconds."""

    msg: Any
    stamp_s: float


class SparseBuffer:
    """The last few sparse messages of one camera (thread-safe: filled by a callback, read by the worker)."""

    def __init__(self, length: int = BUFFER_LENGTH) -> None:
        self._lock = threading.Lock()
        self._items: collections.deque[Measurement] = collections.deque(maxlen=length)
        self.received = 0

    def add(self, msg: Any) -> None:
        """Keep ``msg`` (a message whose header cannot be read is kept with a NaN stamp: refused when used)."""
        try:
            stamp = stamp_seconds(msg.header.stamp)
        except (AttributeError, TypeError, ValueError):
            stamp = math.nan
        with self._lock:
            self._items.append(Measurement(msg, stamp))
            self.received += 1

    def clear(self) -> None:
        """Forget every kept message."""
        with self._lock:
            self._items.clear()

    def closest(self, stamp_s: float) -> Optional[Measurement]:
        """The kept message closest in stamp to ``stamp_s`` (the newest when none has a readable stamp)."""
        with self._lock:
            items = list(self._items)
        if not items:
            return None
        timed = [m for m in items if math.isfinite(m.stamp_s)]
        if not timed:
            return items[-1]
        return min(reversed(timed), key=lambda m: abs(m.stamp_s - stamp_s))


@dataclass(frozen=True)
class FrameContext:
    """What the aligner needs to know of one frame besides the network's output."""

    stamp_s: float
    frame_id: str
    width: int
    height: int
    intrinsics: Optional[Intrinsics]
    measurement: Optional[Measurement]


@dataclass
class SparseStatus:
    """The last frame's alignment, for /diagnostics: where its conversion came from and the fit's figures."""

    source: str = "none"  # fit | held | fixed | model | none
    points: int = 0
    inliers: int = 0
    residual: float = math.nan
    fit_age_s: float = math.nan
    scale: float = math.nan
    shift: float = math.nan
    frames_fitted: int = 0
    last_problem: str = ""  # the reason the last frame had no fit of its own ("" after a fit)
    rejected: collections.Counter = field(default_factory=collections.Counter)

    def warning(self) -> Optional[str]:
        """Why /diagnostics should WARN: the last frame fell back past the held fit (to relative_scale, the
        model's own scale, or no metric depth at all); None while fits (or a held one) are used."""
        if not self.last_problem or self.source not in ("fixed", "model", "none"):
            return None
        used = {"fixed": "relative_scale/relative_shift", "model": "the model's own scale",
                "none": "no metric depth"}[self.source]
        return f"sparse depth not used ({self.last_problem}): {used}"

    def items(self) -> list[tuple[str, str]]:
        """(key, value) pairs for a DiagnosticStatus."""
        def number(value: float, digits: int = 4) -> str:
            return "n/a" if not math.isfinite(value) else f"{value:.{digits}g}"

        values = [("sparse.source", self.source), ("sparse.points", str(self.points)),
                  ("sparse.inliers", str(self.inliers)), ("sparse.residual", number(self.residual)),
                  ("sparse.fit_age_s", number(self.fit_age_s, 3)), ("sparse.scale", number(self.scale, 6)),
                  ("sparse.shift", number(self.shift, 6)), ("sparse.frames_fitted", str(self.frames_fitted)),
                  ("sparse.last_problem", self.last_problem or "none")]
        values += [(f"sparse.rejected.{reason}", str(count)) for reason, count in sorted(self.rejected.items())]
        return values


class SparseAligner:
    """One camera's sparse alignment: the smoother's state, the counters and the last frame's status.

    Args:
        kind: "depth" (a registered sparse depth image) or "points" (a cloud in the camera's optical frame).
        topic: the sparse topic's name, for messages.
        transform: moves a cloud of another frame into the camera's (a tf2 lookup); None: such clouds are refused.
        transform_note: why there is no ``transform``, said when a cloud of another frame is refused.
        on_problem: called with every ``SparseRejected`` (the node logs it, throttled).
    """

    def __init__(self, kind: SparseKind, topic: str, transform: Optional[Transform] = None,
                 transform_note: str = "", on_problem: Callable[[SparseRejected], None] = lambda _: None) -> None:
        self.kind = kind
        self.topic = topic
        self._transform = transform
        self._transform_note = transform_note
        self._on_problem = on_problem
        self._smoother = FitSmoother()
        self._lock = threading.Lock()
        self._status = SparseStatus()

    def status(self) -> SparseStatus:
        """A copy of the last frame's status and the counters."""
        with self._lock:
            status = SparseStatus(**{k: v for k, v in vars(self._status).items() if k != "rejected"})
            status.rejected = collections.Counter(self._status.rejected)
            return status

    def conversion(self, output: np.ndarray, frame: FrameContext, options: SparseOptions, is_metric: bool,
                   fixed: Optional[tuple[float, float]] = None) -> Optional[tuple[float, float]]:
        """The conversion of this frame's output: relative models ``(scale, shift)`` with metric inverse depth =
        ``scale * output + shift``, or None (no metric depth); metric models ``(factor, 0)``: depth x factor.

        Args:
            output: the network's HxW output at the image's size (inverse depth, or meters for metric models).
            frame: the frame's stamp, frame_id, size, intrinsics and the sparse measurement chosen for it.
            options: the current ``sparse.*`` parameters.
            is_metric: a metric model (scale-only correction).
            fixed: relative models: the fixed ``(relative_scale, relative_shift)`` fallback, None when not given.
        """
        self._smoother.smoothing = options.smoothing
        self._smoother.hold_s = options.hold_s
        try:
            samples = self._samples(frame, options)
            values = output[samples.rows, samples.cols].astype(np.float64)
            fit = self._fit(values, samples.depth, options, is_metric)
        except SparseRejected as problem:
            return self._fallback(problem, frame, is_metric, fixed)
        assert frame.measurement is not None
        smoothed = self._smoother.update(fit, frame.measurement.stamp_s, values)
        self._set_status("fit", smoothed, frame.stamp_s - frame.measurement.stamp_s, fitted=True)
        return smoothed.scale, smoothed.shift

    # ------------------------------------------------------------------------------------------ samples
    def _samples(self, frame: FrameContext, options: SparseOptions) -> SparseSamples:
        """The measurement's depths at the image's pixels, or SparseRejected with the reason."""
        measurement = frame.measurement
        if measurement is None:
            raise SparseRejected("absent", f"no message on {self.topic} yet")
        age = frame.stamp_s - measurement.stamp_s
        if not math.isfinite(age) or abs(age) > options.max_age_s:
            said = "has no readable stamp" if not math.isfinite(age) else \
                f"is {abs(age):.3f} s {'older' if age > 0 else 'newer'} than the image"
            raise SparseRejected("stale", f"the closest message on {self.topic} {said} (sparse.max_age "
                                          f"{options.max_age_s:g} s)")
        msg = measurement.msg
        source_frame = str(getattr(getattr(msg, "header", None), "frame_id", ""))
        if self.kind == "depth":
            return self._depth_samples(msg, source_frame, frame)
        return self._cloud_samples(msg, source_frame, frame)

    def _depth_samples(self, msg: Any, source_frame: str, frame: FrameContext) -> SparseSamples:
        if source_frame != frame.frame_id:
            raise SparseRejected("wrong_frame", f"{self.topic} has frame_id {source_frame!r} but the image has "
                                                f"{frame.frame_id!r}: a sparse depth image must be registered to "
                                                "the camera image (same frame_id)")
        try:
            sparse = depth_msg_to_array(msg)
        except InputRejected as error:
            raise SparseRejected("bad_message", f"{self.topic} unreadable ({error.reason}): {error.detail}") from None
        try:
            return samples_from_depth_image(sparse, frame.width, frame.height)
        except ValueError as error:
            raise SparseRejected("wrong_size", f"{self.topic}: {error}") from None

    def _cloud_samples(self, msg: Any, source_frame: str, frame: FrameContext) -> SparseSamples:
        try:
            xyz = cloud_msg_to_xyz(msg)
        except InputRejected as error:
            raise SparseRejected("bad_message", f"{self.topic} unreadable ({error.reason}): {error.detail}") from None
        if frame.intrinsics is None:
            raise SparseRejected("no_camera_info", f"{self.topic}: a cloud is projected with the camera's "
                                                   "intrinsics and no usable CameraInfo has arrived")
        if source_frame != frame.frame_id:
            if self._transform is None:
                raise SparseRejected("wrong_frame", f"{self.topic} is in frame {source_frame!r}, not the camera's "
                                                    f"optical frame {frame.frame_id!r}; {self._transform_note}")
            rotation, translation = self._transform(source_frame, frame.frame_id, msg.header.stamp)
            xyz = transform_points(xyz, rotation, translation)
        i = frame.intrinsics
        return project_points(xyz, i.fx, i.fy, i.cx, i.cy, frame.width, frame.height)

    def _fit(self, values: np.ndarray, depths: np.ndarray, options: SparseOptions, is_metric: bool) -> SparseFit:
        usable = int((np.isfinite(values) & np.isfinite(depths) & (depths > 0)).sum())
        if usable < options.min_points:
            what = "no valid point (all NaN, 0 or out of the image)" if usable == 0 else f"{usable} valid points"
            raise SparseRejected("too_few_points", f"{self.topic} has {what}; sparse.min_points is "
                                                   f"{options.min_points}")
        fit = robust_depth_scale_fit if is_metric else robust_inverse_depth_fit
        try:
            return fit(values, depths, min_points=options.min_points, inlier_threshold=options.inlier_threshold)
        except ValueError as error:
            raise SparseRejected("fit_failed", f"{self.topic}: {error}") from None

    # ----------------------------------------------------------------------------------------- fallback
    def _fallback(self, problem: SparseRejected, frame: FrameContext, is_metric: bool,
                  fixed: Optional[tuple[float, float]]) -> Optional[tuple[float, float]]:
        with self._lock:
            self._status.rejected[problem.reason] += 1
            self._status.last_problem = problem.reason
        held, age = self._smoother.held(frame.stamp_s)
        if held is not None:
            self._set_status("held", held, age)
            result: Optional[tuple[float, float]] = (held.scale, held.shift)
            used = f"the last good fit ({age:.2f} s old)"
        elif is_metric:
            self._set_status("model", None, age)
            result, used = (1.0, 0.0), "the model's own scale"
        elif fixed is not None:
            self._set_status("fixed", None, age)
            result, used = fixed, f"relative_scale/relative_shift ({fixed[0]:g}, {fixed[1]:g})"
        else:
            self._set_status("none", None, age)
            result, used = None, "nothing: depth/relative only (no relative_scale given)"
        self._on_problem(SparseRejected(problem.reason, f"{problem.detail}; this frame uses {used}"))
        return result

    def _set_status(self, source: str, fit: Optional[SparseFit], age: Optional[float], fitted: bool = False) -> None:
        with self._lock:
            status = self._status
            status.source = source
            status.fit_age_s = math.nan if age is None else age
            status.frames_fitted += int(fitted)
            if fitted:
                status.last_problem = ""
            if fit is not None:
                status.points, status.inliers, status.residual = fit.points, fit.inliers, fit.residual
                status.scale, status.shift = fit.scale, fit.shift
            elif source != "held":
                status.points, status.inliers, status.residual = 0, 0, math.nan


def fixed_conversion(settings: NodeSettings) -> Optional[tuple[float, float]]:
    """The user's ``(relative_scale, relative_shift)``, or None when relative_scale is 0 (no conversion)."""
    return (settings.relative_scale, settings.relative_shift) if settings.relative_scale > 0 else None

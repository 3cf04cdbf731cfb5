"""One camera's temporal filter (numpy only, no ROS).

``TemporalFilter`` keeps one camera's depth stable from frame to frame (``mode``):

- ``off``: the frame as it is.
- ``scale``: the network's global scale jitters from frame to frame (a static scene "breathes"). Each frame's
  log-scale against the previous frame (the median of the log ratio over the pixels valid in both: robust to
  moving objects covering less than half of the image) is accumulated into a track, which two estimators follow:
  an alpha-beta (constant-velocity) filter, started as a least-squares line through the frames so far, and a
  running average of the track for a still camera (``static_alpha``). The alpha-beta filter's velocity, measured
  against its own spread under the track's jitter (estimated from the second differences of the track, which a
  constant speed does not change), says how much the camera is moving: below ``motion_start`` standard deviations
  the average is used, above ``motion_full`` the alpha-beta estimate, in between a blend; the average restarts
  from the blend (and averages afresh) after motion. The frame is rescaled by the estimate minus the raw track.
  A still scene is smoothed by the average; a robot driving at constant speed towards an obstacle is followed by
  the constant-velocity model with no steady-state lag (the figures are in the README). Only the global scale
  changes: local changes (an object appearing) pass through on the frame they happen.
- ``ema``: per pixel, an exponential moving average in inverse depth (``weight`` on the new frame), with a
  per-pixel reset where the new inverse depth differs from the average by more than ``reset_ratio`` (an object
  appeared or left). It also cuts per-pixel noise, but lags on a moving camera: for static or slow cameras.

The filter starts over (its first frame passes unchanged) when the stamps jump by more than ``max_gap_s`` or go
backwards, when the camera (``source``, e.g. the frame_id) changes, when the image size changes, and when a
frame's global change is beyond ``max_step`` (a cut, not jitter). Invalid (NaN) input pixels stay NaN: nothing
is filled in from history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from dav2_ros.geometry.flying_pixels import valid_depth

TemporalMode = Literal["off", "scale", "ema"]
TEMPORAL_MODES: tuple[str, ...] = ("off", "scale", "ema")
#: The node's default ``temporal_filter`` (see the README for the measurements behind it).
DEFAULT_TEMPORAL_MODE: TemporalMode = "scale"
#: ``scale`` measures the frame-to-frame step on every this-many-th row and column.
SCALE_SAMPLE = 4
#: ``scale`` never takes the track's frame-to-frame jitter (log-scale) for less than this (the median of many
#: pixels' ratios is that steady on a still, noise-free stream).
MIN_SCALE_JITTER = 1e-3
#: A gap between stamps (seconds) above which the filter starts over (parameter ``temporal_max_gap``).
DEFAULT_MAX_GAP_S = 0.5


# ------------------------------------------------------------------------------------------------ temporal
@dataclass(frozen=True)
class TemporalOptions:
    """The tuning of ``TemporalFilter`` (the defaults are the measured ones; see the module docstring).

    Attributes:
        alpha, beta: steady-state gains of the alpha-beta filter on the global log-scale (``scale``).
        static_alpha: the gain of the still-camera average of the global log-scale (``scale``).
        motion_start, motion_full: the alpha-beta velocity, in standard deviations of its spread under jitter
            alone, from which on ``scale`` starts to blend in the alpha-beta estimate, and from which on it uses
            that estimate only.
        noise_weight: the weight of a new frame in the running estimate of the track's jitter (``scale``).
        weight: the new frame's weight in the per-pixel average (``ema``).
        reset_ratio: per-pixel reset of ``ema`` when the new inverse depth differs by more than this fraction.
        max_step: a frame whose global scale differs from the previous one's by more than this fraction starts
            the filter over (a cut, a new scene: not jitter).
        min_overlap: the fraction of pixels that must be valid in both frames to measure the global scale;
            fewer starts the filter over.
        max_gap_s: a stamp gap above this (seconds), or a stamp going backwards, starts the filter over.
    """

    alpha: float = 0.3
    beta: float = 0.05
    static_alpha: float = 0.1
    motion_start: float = 2.5
    motion_full: float = 4.0
    noise_weight: float = 0.05
    weight: float = 0.3
    reset_ratio: float = 0.15
    max_step: float = 0.3
    min_overlap: float = 0.2
    max_gap_s: float = DEFAULT_MAX_GAP_S

    def __post_init__(self) -> None:
        checks = [(0 < self.alpha <= 1, "alpha must be in (0, 1]"), (0 <= self.beta <= 1, "beta must be in [0, 1]"),
                  (0 < self.static_alpha <= 1, "static_alpha must be in (0, 1]"),
                  (0 <= self.motion_start < self.motion_full, "need 0 <= motion_start < motion_full"),
                  (0 < self.noise_weight <= 1, "noise_weight must be in (0, 1]"),
                  (0 < self.weight <= 1, "weight must be in (0, 1]"), (self.reset_ratio > 0, "reset_ratio must be > 0"),
                  (self.max_step > 0, "max_step must be > 0"), (0 < self.min_overlap <= 1, "min_overlap in (0, 1]"),
                  (self.max_gap_s > 0, "max_gap_s must be > 0")]
        for ok, reason in checks:
            if not ok:
                raise ValueError(f"invalid temporal filter options: {reason}")


def _velocity_spread(alpha: float, beta: float) -> float:
    """The standard deviation of a steady-state alpha-beta filter's velocity fed white noise of unit standard
    deviation (Kalata 1984)."""
    return math.sqrt(2.0 * beta * beta / (alpha * (4.0 - 2.0 * alpha - beta)))


class TemporalFilter:
    """One camera's temporal filter (one thread at a time); see the module docstring for the modes.

    Args:
        mode: ``off`` | ``scale`` | ``ema``.
        options: the tuning; the defaults are the measured ones.

    Attributes:
        resets: how many times the filter started over (not counting the first frame).
        last_reset: why it last started over ("" for none yet).
        last_scale: the global factor applied to the last frame (``scale``; 1.0 otherwise).
        motion: how much ``scale`` took the last frame for a moving camera (0 still ... 1 moving; 0 otherwise).
    """

    def __init__(self, mode: TemporalMode = DEFAULT_TEMPORAL_MODE, options: TemporalOptions = TemporalOptions()
                 ) -> None:
        if mode not in TEMPORAL_MODES:
            raise ValueError(f"temporal filter mode must be one of {', '.join(TEMPORAL_MODES)}, got {mode!r}")
        self.mode: TemporalMode = mode
        self.options = options
        self.resets = 0
        self.last_reset = ""
        self.last_scale = 1.0
        self._clear()

    def _clear(self) -> None:
        self._shape: Optional[tuple[int, ...]] = None
        self._stamp: Optional[float] = None
        self._source: Optional[str] = None
        self._previous: Optional[np.ndarray] = None  # scale: log of the last raw frame (sampled); ema: inverse average
        self._track = 0.0  # scale: accumulated raw log-scale
        self._estimate = 0.0  # scale: smoothed log-scale
        self._velocity = 0.0  # scale: smoothed log-scale change per frame
        self._frames = 0  # scale: frames since the start (the alpha-beta filter's least-squares start-up)
        self._still = 0  # scale: frames the still-camera average has run since the last clear motion
        self._average = 0.0  # scale: the still-camera average of the track
        self._recent = (0.0, 0.0)  # scale: the track two frames and one frame back
        self._jitter_var = 0.0  # scale: running estimate of the variance of the track's frame-to-frame jitter
        self._jitter_count = 0
        self.motion = 0.0  # scale: the blend weight of the last frame (0 still, 1 moving)

    def reset(self, reason: str = "reset") -> None:
        """Start over: the next frame passes unchanged."""
        if self._shape is not None:
            self.resets += 1
            self.last_reset = reason
        self._clear()
        self.last_scale = 1.0

    def update(self, depth: np.ndarray, stamp: Optional[float] = None, source: Optional[str] = None) -> np.ndarray:
        """The filtered depth of this frame (a new float32 array; `depth` is not modified).

        Args:
            depth: (H, W) meters, NaN (or <= 0) where invalid.
            stamp: the frame's time in seconds (the header stamp), or None (no gap check).
            source: the camera's identity (the frame_id), or None (no check); a change starts over.
        """
        depth = np.asarray(depth, dtype=np.float32)
        if depth.ndim != 2:
            raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
        reason = self._reset_reason(depth.shape, stamp, source)
        if reason:
            self.reset(reason)
        first = self._shape is None
        if self.mode == "off":
            out = depth.copy()
        elif self.mode == "scale":
            out = self._scale(depth, first)
        else:
            out = self._ema(depth, first)
        self._shape, self._stamp, self._source = depth.shape, stamp, source
        return out

    def _reset_reason(self, shape: tuple[int, ...], stamp: Optional[float], source: Optional[str]) -> str:
        if self._shape is None:
            return ""
        if shape != self._shape:
            return "size_change"
        if source is not None and self._source is not None and source != self._source:
            return "camera_change"
        if stamp is not None and self._stamp is not None:
            if stamp < self._stamp:
                return "stamp_backwards"
            if stamp - self._stamp > self.options.max_gap_s:
                return "stamp_gap"
        return ""

    # ------------------------------------------------------------------------------------------- scale
    def _scale(self, depth: np.ndarray, first: bool) -> np.ndarray:
        # The global step is measured on every SCALE_SAMPLE-th row and column: a median of tens of thousands of
        # ratios is as robust as one of a million, at a sixteenth of the cost.
        sample = depth[::SCALE_SAMPLE, ::SCALE_SAMPLE]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_sample = np.where(valid_depth(sample), np.log(sample), np.float32(np.nan))
        if not first:
            previous = self._previous
            both = np.isfinite(log_sample) & np.isfinite(previous)
            if both.sum() < self.options.min_overlap * sample.size:
                self.reset("low_overlap")
                first = True
            else:
                step = float(np.median(log_sample[both] - previous[both]))
                if abs(math.expm1(step)) > self.options.max_step:
                    self.reset("scale_step")
                    first = True
        self._previous = log_sample
        if first:
            self.last_scale = 1.0
            self.motion = 0.0
            self._frames = self._still = 1
            return depth.copy()
        self.last_scale = math.exp(self._estimate_scale(step) - self._track)
        out = depth * np.float32(self.last_scale)
        out[~valid_depth(depth)] = np.nan  # invalid stays invalid (NaN), whatever it was
        return out

    def _estimate_scale(self, step: float) -> float:
        """The smoothed log-scale after a frame whose log-scale differs from the previous frame's by `step`."""
        options = self.options
        track = self._track + step
        self._frames += 1
        self._still += 1
        n = self._frames
        # The alpha-beta filter, started as the least-squares line through the frames so far (growing memory) and
        # settling on its steady-state gains: a constant speed is followed from the third frame on.
        alpha = max(options.alpha, 2.0 * (2 * n - 1) / (n * (n + 1)))
        beta = max(options.beta, 6.0 / (n * (n + 1)))
        predicted = self._estimate + self._velocity
        innovation = track - predicted
        self._estimate = predicted + alpha * innovation
        self._velocity += beta * innovation
        # The track's jitter: a second difference of white jitter of variance s2 has variance 6 s2; a constant
        # speed adds nothing.
        older, old = self._recent
        if n >= 3:
            self._jitter_count += 1
            sample = (track - 2.0 * old + older) ** 2 / 6.0
            self._jitter_var += max(options.noise_weight, 1.0 / self._jitter_count) * (sample - self._jitter_var)
        self._recent = (old, track)
        # The still-camera average (a running mean until it settles on static_alpha).
        self._average += max(options.static_alpha, 1.0 / self._still) * (track - self._average)
        if self._jitter_count == 0:
            self.motion = 0.0
        else:
            jitter = max(math.sqrt(self._jitter_var), MIN_SCALE_JITTER)
            spread = jitter * max(_velocity_spread(options.alpha, options.beta), math.sqrt(12.0 / (n * (n * n - 1))))
            significance = abs(self._velocity) / spread
            self.motion = min(max((significance - options.motion_start) / (options.motion_full - options.motion_start),
                                  0.0), 1.0)
        estimate = self.motion * self._estimate + (1.0 - self.motion) * self._average
        self._average = estimate  # the average goes on from what was output ...
        if self.motion >= 1.0:
            self._still = 1  # ... and after clear motion averages afresh (no overshoot carried over)
        self._track = track
        return estimate

    # --------------------------------------------------------------------------------------------- ema
    def _ema(self, depth: np.ndarray, first: bool) -> np.ndarray:
        valid = valid_depth(depth)
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = np.where(valid, np.float32(1.0) / depth, np.float32(np.nan))
        if first:
            self._previous = inverse
            return np.where(valid, depth, np.float32(np.nan)).astype(np.float32)
        average = self._previous
        weight = np.float32(self.options.weight)
        with np.errstate(invalid="ignore"):
            blended = average + weight * (inverse - average)
            jump = np.abs(inverse - average) > np.float32(self.options.reset_ratio) * average
        fresh = ~np.isfinite(average) | jump  # no history, or a large change: start this pixel over
        out = np.where(fresh, inverse, blended)
        self._previous = out  # NaN where this frame is invalid: the pixel starts over when it comes back
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.float32(1.0) / out).astype(np.float32)

"""Frame counters and latency percentiles for the node's diagnostics; thread-safe, no ROS."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np


@dataclass(frozen=True)
class StatsSnapshot:
    """What the diagnostics report at one moment."""

    frames_in: int
    frames_out: int
    dropped: int
    rejected: dict[str, int]
    cloud_skipped: dict[str, int]  # frames published without cloud/CameraInfo, per reason
    rate_hz: float  # published frames per second over the window
    latency_p50_ms: Optional[float]  # receive -> publish, wall clock
    latency_p99_ms: Optional[float]
    stamp_age_p50_ms: Optional[float]  # image header stamp -> publish, node clock
    inference_p50_ms: Optional[float]
    seconds_since_input: Optional[float]
    rejected_in_window: int = 0  # rejections during the window
    flying_removed_pct: Optional[float] = None  # % of valid depth pixels the flying-pixel filter removed (window;
    #                                             None while the last frame went without it)
    temporal_filter: str = "off"  # the temporal filter's mode on the last frame
    temporal_resets: int = 0  # times it started over since its mode was set
    temporal_last_reset: str = ""  # why it last started over
    temporal_scale: float = 1.0  # the global factor `scale` applied to the last frame


class FrameStats:
    """Counts frames in/out/dropped/rejected and keeps the last `window_s` seconds of latencies."""

    def __init__(self, window_s: float = 10.0) -> None:
        self._lock = threading.Lock()
        self._window_s = window_s
        self.frames_in = 0
        self.frames_out = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self.cloud_skipped: collections.Counter[str] = collections.Counter()
        self._published: collections.deque[tuple[float, float, Optional[float], Optional[float]]] = collections.deque()
        self._rejections: collections.deque[float] = collections.deque()
        self._last_input: Optional[float] = None
        self._flying: collections.deque[tuple[float, int, int]] = collections.deque()
        self._temporal: tuple[str, int, str, float] = ("off", 0, "", 1.0)
        self._flying_on = False  # whether the last published frame went through the flying-pixel filter

    def frame_received(self) -> None:
        """An image arrived from the camera."""
        with self._lock:
            self.frames_in += 1
            self._last_input = time.monotonic()

    def frame_rejected(self, reason: str) -> None:
        """An image was refused (bad encoding, size...), counted under `reason`."""
        with self._lock:
            self.rejected[reason] += 1
            self._rejections.append(time.monotonic())

    def cloud_skipped_for(self, reason: str) -> None:
        """A frame's depth went out without cloud and depth CameraInfo (unusable CameraInfo), per `reason`."""
        with self._lock:
            self.cloud_skipped[reason] += 1

    def frame_published(self, latency_s: float, stamp_age_s: Optional[float], inference_s: Optional[float]) -> None:
        """A frame's outputs went out `latency_s` after it was received."""
        now = time.monotonic()
        with self._lock:
            self.frames_out += 1
            self._published.append((now, latency_s, stamp_age_s, inference_s))
            self._trim(now)

    def filters_applied(self, valid_pixels: Optional[int], flying_pixels: Optional[int], temporal: Any) -> None:
        """A published frame's flying-pixel counts (None: filter off) and its camera's temporal filter state
        (a `TemporalFilter`, or None: off)."""
        now = time.monotonic()
        state = ("off", 0, "", 1.0) if temporal is None else (
            temporal.mode, temporal.resets, temporal.last_reset, temporal.last_scale)
        with self._lock:
            self._flying_on = valid_pixels is not None and flying_pixels is not None
            if self._flying_on:
                self._flying.append((now, valid_pixels, flying_pixels))
            self._temporal = state
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._published and now - self._published[0][0] > self._window_s:
            self._published.popleft()
        while self._rejections and now - self._rejections[0] > self._window_s:
            self._rejections.popleft()
        while self._flying and now - self._flying[0][0] > self._window_s:
            self._flying.popleft()

    def snapshot(self, dropped: int) -> StatsSnapshot:
        """Counters and percentiles now; `dropped` comes from the worker's slot."""
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            samples = list(self._published)
            rejected = dict(self.rejected)
            cloud_skipped = dict(self.cloud_skipped)
            rejected_recent = len(self._rejections)
            frames_in, frames_out, last_input = self.frames_in, self.frames_out, self._last_input
            flying = list(self._flying)
            temporal = self._temporal
            flying_on = self._flying_on
        valid_total = sum(f[1] for f in flying)
        flying_pct = 100.0 * sum(f[2] for f in flying) / valid_total if valid_total and flying_on else None
        latencies = np.array([s[1] for s in samples], dtype=np.float64) * 1e3
        ages = np.array([s[2] for s in samples if s[2] is not None], dtype=np.float64) * 1e3
        inference = np.array([s[3] for s in samples if s[3] is not None], dtype=np.float64) * 1e3
        if len(samples) >= 2:
            span = samples[-1][0] - samples[0][0]
            rate = (len(samples) - 1) / span if span > 0 else 0.0
        else:
            rate = 0.0
        return StatsSnapshot(
            frames_in=frames_in,
            frames_out=frames_out,
            dropped=dropped,
            rejected=rejected,
            cloud_skipped=cloud_skipped,
            rate_hz=rate,
            latency_p50_ms=_percentile(latencies, 50),
            latency_p99_ms=_percentile(latencies, 99),
            stamp_age_p50_ms=_percentile(ages, 50),
            inference_p50_ms=_percentile(inference, 50),
            seconds_since_input=None if last_input is None else now - last_input,
            rejected_in_window=rejected_recent,
            flying_removed_pct=flying_pct,
            temporal_filter=temporal[0],
            temporal_resets=temporal[1],
            temporal_last_reset=temporal[2],
            temporal_scale=temporal[3],
        )


def _percentile(values: np.ndarray, q: float) -> Optional[float]:
    return float(np.percentile(values, q)) if values.size else None

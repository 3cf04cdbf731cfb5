"""Counters of an offline run and the closing summary (text for people, a dict for --summary-json)."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import numpy as np


# The outputs whose written messages the summary counts (the depth CameraInfo goes with each depth image).
_WRITTEN_COUNTERS = {"relative": "relative_written", "depth": "depth_written", "points": "clouds_written",
                     "colored": "colored_written"}


@dataclasses.dataclass
class RunStats:
    """What happened to the frames of one run: counts, failures by reason, per-frame latency."""

    frames_in_bag: int
    frames_read: int = 0
    depth_written: int = 0
    relative_written: int = 0
    clouds_written: int = 0
    colored_written: int = 0
    failures: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    clouds_skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    latencies_s: list[float] = dataclasses.field(default_factory=list)
    stage_totals_s: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    interrupted: bool = False
    stopped_by_error: str | None = None

    def latency_ms(self) -> dict[str, float]:
        """Mean and 50/90/99th percentile of the per-frame processing time, in ms (empty if no frame)."""
        if not self.latencies_s:
            return {}
        ms = np.asarray(self.latencies_s, dtype=np.float64) * 1e3
        p50, p90, p99 = np.percentile(ms, (50, 90, 99))
        return {"mean": float(ms.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}

    def record_frame(self, latency_s: float, stage_timings_s: dict[str, float]) -> None:
        """One processed frame: its wall time and the FrameProcessor's per-stage seconds (its `batch_size`, a
        count, is not a stage)."""
        self.latencies_s.append(latency_s)
        self.stage_totals_s.update({stage: s for stage, s in stage_timings_s.items() if stage != "batch_size"})

    def count_written(self, output: str) -> None:
        """One message of `output` ("relative", "depth", "depth_info", "points", "colored") was written."""
        counter = _WRITTEN_COUNTERS.get(output)
        if counter is not None:
            setattr(self, counter, getattr(self, counter) + 1)

    def stage_means_ms(self) -> dict[str, float]:
        """Mean milliseconds per frame of each processing stage (preprocess, inference, cloud, ...)."""
        frames = len(self.latencies_s)
        return {stage: 1e3 * total / frames for stage, total in self.stage_totals_s.items()} if frames else {}

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-ready values."""
        return {
            "frames_in_bag": self.frames_in_bag,
            "frames_read": self.frames_read,
            "depth_written": self.depth_written,
            "relative_written": self.relative_written,
            "clouds_written": self.clouds_written,
            "colored_written": self.colored_written,
            "failures": dict(self.failures),
            "clouds_skipped": dict(self.clouds_skipped),
            "latency_ms": self.latency_ms(),
            "stage_mean_ms": self.stage_means_ms(),
            "interrupted": self.interrupted,
            "stopped_by_error": self.stopped_by_error,
        }


def format_summary(stats: RunStats, header_lines: list[str], output_counts: dict[str, int]) -> str:
    """The closing summary printed after a run (also after an interrupted or failed one)."""
    lines = ["bag_to_depth summary", *(f"  {line}" for line in header_lines)]
    lines.append(
        f"  frames:   {stats.frames_read} of {stats.frames_in_bag} read, {stats.depth_written} depth images, "
        f"{stats.relative_written} relative images, {stats.clouds_written} point clouds, "
        f"{stats.colored_written} colored images written"
    )
    if stats.failures:
        detail = ", ".join(f"{reason} x{count}" for reason, count in sorted(stats.failures.items()))
        lines.append(f"  failures: {sum(stats.failures.values())} frames not processed ({detail})")
    else:
        lines.append("  failures: none")
    for reason, count in sorted(stats.clouds_skipped.items()):
        lines.append(f"  no point cloud for {count} frame(s): {reason}")
    latency = stats.latency_ms()
    if latency:
        lines.append(
            "  latency:  per frame (decode + model + cloud) "
            + ", ".join(f"{key} {value:.1f} ms" for key, value in latency.items())
        )
        stages = {k: v for k, v in stats.stage_means_ms().items() if k != "total"}
        lines.append("  stages:   mean " + ", ".join(f"{key} {value:.1f} ms" for key, value in stages.items()))
    lines.append("  topics:   " + (", ".join(f"{t} x{n}" for t, n in sorted(output_counts.items())) or "none"))
    if stats.interrupted:
        lines.append(
            f"  INTERRUPTED after {stats.frames_read} of {stats.frames_in_bag} frames: "
            "the output bag is closed and valid and holds the frames done so far"
        )
    if stats.stopped_by_error:
        lines.append(
            f"  STOPPED by an error after {stats.frames_read} frames: {stats.stopped_by_error}; "
            "the output bag is closed and holds the frames done so far"
        )
    return "\n".join(lines)

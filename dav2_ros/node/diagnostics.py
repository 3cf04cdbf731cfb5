"""The node's /diagnostics statuses, one per camera: rate, latency, frame counters, rejections, device and model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from dav2_ros.node.stats import StatsSnapshot

# No input for this long (seconds) turns the status to WARN.
STALE_INPUT_S = 5.0


def _fmt(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.1f}{unit}"


def diagnostic_array(header: Header, node_name: str, hardware_id: str, snapshots: Mapping[str, StatsSnapshot],
                     model: dict[str, str], extra: Mapping[str, Sequence[tuple[str, str]]] = {},
                     warnings: Mapping[str, str] = {}) -> DiagnosticArray:
    """One DiagnosticStatus per camera (name "" = the single camera of a one-camera node); `extra`: more
    (key, value) pairs per camera (the sparse depth alignment's); `warnings`: a WARN message per camera
    (the sparse alignment's fallback) where nothing else is wrong."""
    return DiagnosticArray(header=header, status=[
        camera_status(node_name, camera, hardware_id, snapshot, model, extra.get(camera, ()), warnings.get(camera))
        for camera, snapshot in snapshots.items()])


def camera_status(node_name: str, camera: str, hardware_id: str, snapshot: StatsSnapshot,
                  model: dict[str, str], extra: Sequence[tuple[str, str]] = (),
                  warning: str | None = None) -> DiagnosticStatus:
    """One camera's status; WARN when its input stalls, its frames are being rejected, or `warning` says why."""
    level, message = DiagnosticStatus.OK, "publishing"
    if snapshot.frames_in == 0:
        level, message = DiagnosticStatus.WARN, "no image received yet"
    elif snapshot.seconds_since_input is not None and snapshot.seconds_since_input > STALE_INPUT_S:
        level, message = DiagnosticStatus.WARN, f"no image for {snapshot.seconds_since_input:.0f} s"
    elif snapshot.rejected_in_window:
        level = DiagnosticStatus.WARN
        message = f"{snapshot.rejected_in_window} frame(s) rejected recently: " + ", ".join(
            f"{reason}={count}" for reason, count in sorted(snapshot.rejected.items()))
    elif warning:
        level, message = DiagnosticStatus.WARN, warning
    values = [
        ("rate_hz", f"{snapshot.rate_hz:.2f}"),
        ("latency_p50_ms", _fmt(snapshot.latency_p50_ms)),
        ("latency_p99_ms", _fmt(snapshot.latency_p99_ms)),
        ("stamp_age_p50_ms", _fmt(snapshot.stamp_age_p50_ms)),
        ("inference_p50_ms", _fmt(snapshot.inference_p50_ms)),
        ("frames_in", str(snapshot.frames_in)),
        ("frames_out", str(snapshot.frames_out)),
        ("frames_dropped", str(snapshot.dropped)),
        ("frames_rejected", str(sum(snapshot.rejected.values()))),
        ("flying_pixels_removed_pct", "off" if snapshot.flying_removed_pct is None
         else f"{snapshot.flying_removed_pct:.2f}"),
        ("temporal_filter", snapshot.temporal_filter),
        ("temporal_resets", str(snapshot.temporal_resets)),
        ("temporal_last_reset", snapshot.temporal_last_reset or "none"),
        ("temporal_scale", f"{snapshot.temporal_scale:.4f}"),
    ]
    values += [(f"rejected.{reason}", str(count)) for reason, count in sorted(snapshot.rejected.items())]
    values += [(f"cloud_skipped.{reason}", str(count)) for reason, count in sorted(snapshot.cloud_skipped.items())]
    values += list(extra)
    values += sorted(model.items())
    return DiagnosticStatus(
        level=level,
        name=f"{node_name}: depth estimation" + (f" ({camera})" if camera else ""),
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=key, value=value) for key, value in values],
    )

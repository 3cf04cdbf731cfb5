"""Soak: many frames at a small input size through the real node, with the node's RSS sampled from
outside (psutil). CI sends 150 frames and bounds the RSS growth generously; the slow test (and
test/campaigns/robustness.py) sends 2,000 and compares latency and memory at the start and the end."""

from __future__ import annotations

import pytest

from camera_frame import Camera
from node_rig import NodeRig
from stream_scenarios import StreamResult, run_soak

pytestmark = pytest.mark.ros

RATE_HZ = 10.0


@pytest.fixture(scope="module")
def camera() -> Camera:
    return Camera.tum(width=160)


@pytest.fixture(scope="module")
def rig():
    rig = NodeRig("/dav2_robust_soak", {"input_size": 70}, keep_messages=False).start()
    try:
        yield rig
    finally:
        rig.close()


def report(result: StreamResult) -> None:
    print(f"\nsoak: sent {result.sent}, node received {result.node_in}, published {result.published}, "
          f"dropped {result.dropped}, rejected {result.rejected}; latency p50/p99 start {result.latency_start.text()}, "
          f"end {result.latency_end.text()}, waited {result.waited.text()}; model {result.inference_start_ms:.0f} -> "
          f"{result.inference_end_ms:.0f} ms; RSS {result.rss_start_mb:.1f} -> {result.rss_end_mb:.1f} MB "
          f"(max {result.rss_max_mb:.1f}); {'; '.join(result.notes)}")


def assert_steady(result: StreamResult, rss_growth_mb: float) -> None:
    assert result.node_in == result.published + result.dropped + result.rejected, result
    assert result.rejected == 0 and result.max_backlog <= 2 and result.stamps_increasing, result
    assert result.published >= result.node_in // 4, "the node fell far behind a 10 Hz camera at input_size 70"
    assert result.latency.max_ms <= (2 * result.slowest_frame_s + 1.0) * 1e3, result
    assert result.waited.p50_ms <= 1e3 / RATE_HZ + 200, "frames waited longer than one camera period: a queue"
    assert result.waited.max_ms <= result.slowest_frame_s * 1e3 + 500, result
    assert result.rss_end_mb - result.rss_start_mb <= rss_growth_mb, result


def test_150_frames_keep_memory_and_latency_flat(rig, camera):
    result = run_soak(rig, camera, frames=150, rate_hz=RATE_HZ)
    report(result)
    assert result.sent == 150
    assert_steady(result, rss_growth_mb=40.0)


@pytest.mark.slow
def test_2000_frames_keep_memory_and_latency_flat(rig, camera):
    result = run_soak(rig, camera, frames=2000, rate_hz=RATE_HZ)
    report(result)
    assert result.sent == 2000
    assert_steady(result, rss_growth_mb=20.0)


def test_soak_left_a_clean_log(rig):
    rig.assert_clean_log()
    assert rig.process.process.poll() is None

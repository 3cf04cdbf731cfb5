"""The depth filters through the real node over DDS: `temporal_filter` switches live (off -> ema -> scale -> off),
each mode giving what `TemporalFilter` gives on the node's own unfiltered frames; a gap in the stamps starts the
filter over; `flying_pixel_threshold` switches live; /diagnostics reports the mode, the resets and the share of
flying pixels removed."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from dav2_ros.geometry.depth_filters import TemporalFilter, TemporalOptions
from node_harness import DdsClient, InProcessNode, NodeProcess, every, image_array, wait_until
from project_paths import PARITY_DIR

pytestmark = pytest.mark.ros

NAMESPACE = "/dav2_filters_test"
WIDTH, HEIGHT = 160, 120
MAX_GAP_S = 0.5
# Random weights give a rough depth that the default threshold cuts to pieces; a looser one keeps most pixels, so
# the temporal comparisons below see most of the frame.
THRESHOLD = 0.05
PARAMS = {"allow_random_weights": True, "input_size": 70, "device": "cpu", "precision": "fp32",
          "weights_dir": "/nonexistent/dav2_weights", "warmup_width": WIDTH, "warmup_height": HEIGHT,
          "temporal_filter": "off", "temporal_max_gap": MAX_GAP_S, "flying_pixel_threshold": THRESHOLD}
TIMEOUT_S = 60.0
FIXTURE = PARITY_DIR / "tum_vits_308.npz"


def frames() -> tuple[np.ndarray, np.ndarray]:
    """A real camera frame at 160x120 and the same, brighter (a slightly different depth)."""
    with np.load(FIXTURE) as z:
        rgb = np.ascontiguousarray(z["image_bgr"][..., ::-1])
    a = cv2.resize(rgb, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    return a, np.clip(a.astype(np.int16) + 20, 0, 255).astype(np.uint8)


def image_msg(pixels: np.ndarray, stamp: float) -> Image:
    msg = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=pixels.tobytes())
    msg.header.stamp.sec = int(stamp)
    msg.header.stamp.nanosec = int(round((stamp - int(stamp)) * 1e9))
    msg.header.frame_id = "camera_optical"
    return msg


def test_temporal_filter_switches_live_and_a_stamp_gap_resets_it() -> None:
    a, b = frames()
    with InProcessNode(PARAMS, namespace=NAMESPACE) as live, DdsClient("dav2_filters_client") as client:
        publisher = client.publisher(Image, f"{NAMESPACE}/image")
        depth = client.collect(Image, f"{NAMESPACE}/depth/image")
        diagnostics = client.collect(DiagnosticArray, "/diagnostics")
        client.wait_for_subscribers(publisher)
        client.wait_for_publishers(f"{NAMESPACE}/depth/image")

        def send(pixels: np.ndarray, stamp: float) -> np.ndarray:
            """The depth published for this frame (the input is best effort: resent until it comes)."""
            msg = image_msg(pixels, stamp)
            publisher.publish(msg)
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            out = depth.wait_for(lambda m: (m.header.stamp.sec, m.header.stamp.nanosec) == key, TIMEOUT_S,
                                 on_wait=every(2.0, lambda: publisher.publish(msg)))
            return image_array(out)

        def set_mode(mode: str) -> None:
            results = client.set_parameters(live.fqn, {"temporal_filter": mode})
            assert all(r.successful for r in results), [r.reason for r in results]

        def status() -> dict[str, str]:
            for array in reversed(diagnostics.messages):
                for s in array.status:
                    if s.name == f"{live.fqn}: depth estimation":
                        return {kv.key: kv.value for kv in s.values}
            return {}

        raw_a, raw_b = send(a, 10.0), send(b, 10.1)  # off: the node's unfiltered frames
        assert np.isfinite(raw_b).mean() > 0.5
        wait_until(lambda: status().get("flying_pixels_removed_pct", "off") != "off", TIMEOUT_S,
                   "the flying-pixel share in diagnostics")
        assert status()["temporal_filter"] == "off"
        removed = float(status()["flying_pixels_removed_pct"])
        assert 0.0 < removed < 50.0

        filtered = {}
        stamp = 10.2
        for mode in ("ema", "scale"):
            set_mode(mode)  # a new filter: it starts with the next frame
            send(a, stamp)
            filtered[mode] = send(b, stamp + 0.1)
            reference = TemporalFilter(mode, TemporalOptions(max_gap_s=MAX_GAP_S))
            reference.update(raw_a, stamp=stamp, source="camera_optical")
            expected = reference.update(raw_b, stamp=stamp + 0.1, source="camera_optical")
            np.testing.assert_allclose(filtered[mode], expected, rtol=1e-5, atol=1e-5, equal_nan=True)
            assert not np.allclose(filtered[mode], raw_b, equal_nan=True), f"{mode} changed nothing"
            stamp += 0.2

        # a gap in the stamps: the scale filter starts over, so the frame comes out as it is
        after_gap = send(b, stamp + 10.0)
        np.testing.assert_array_equal(after_gap, raw_b)
        wait_until(lambda: status().get("temporal_resets") == "1", TIMEOUT_S, "the reset in diagnostics")
        assert status()["temporal_filter"] == "scale" and status()["temporal_last_reset"] == "stamp_gap"

        set_mode("off")
        np.testing.assert_array_equal(send(a, stamp + 10.1), raw_a)
        wait_until(lambda: status().get("temporal_filter") == "off", TIMEOUT_S, "mode off in diagnostics")

        # the flying-pixel filter switches live too: off, the pixels it removed come back
        results = client.set_parameters(live.fqn, {"flying_pixel_threshold": 0.0})
        assert all(r.successful for r in results), [r.reason for r in results]
        unfiltered = send(a, stamp + 10.2)
        kept = np.isfinite(raw_a)
        assert np.isfinite(unfiltered).sum() > kept.sum()
        np.testing.assert_array_equal(unfiltered[kept], raw_a[kept])
        wait_until(lambda: status().get("flying_pixels_removed_pct") == "off", TIMEOUT_S, "filter off in diagnostics")


def test_a_bare_off_in_yaml_is_refused_with_the_fix() -> None:
    """`temporal_filter:=off` reaches the node as the boolean false (YAML 1.1): it says to quote the word."""
    params = {k: v for k, v in PARAMS.items() if k != "temporal_filter"}
    with NodeProcess(params, namespace=f"{NAMESPACE}_yaml", extra_args=["-p", "temporal_filter:=off"]) as node:
        assert node.wait(60.0) == 1
    assert "cannot start: invalid parameter" in node.output and "temporal_filter" in node.output
    assert 'quote the word, e.g. "off"' in node.output

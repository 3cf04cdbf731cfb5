"""Bad input against the real node over DDS: every named kind of broken Image, CompressedImage and
CameraInfo, then a hypothesis fuzz over the Image fields. For each: the node's specific warning
(throttled per reason), its per-reason counter in /diagnostics, nothing (or only depth, for a bad
CameraInfo) published for that frame, and the next good frame right -- depth size and stamp, depth
CameraInfo and a cloud equal to an independent back-projection. The table of outcomes is printed
(`pytest -s`) and, with DAV2_ROBUSTNESS_OUT=<dir>, written there as bad_input.json.

Two node processes (raw and compressed input; vits stand-in weights, input_size 70, CPU) serve the
whole module, so their logs can be read and checked for tracebacks at the end.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import string
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from dav2_ros.conversions.errors import MAX_PIXELS, MAX_SIDE
from dav2_ros.node.depth_node import WARN_PERIOD_S
from dav2_ros.pipeline.processing import MAX_ASPECT_RATIO
from bad_frames import altered_raw, compressed_frame, png_header
from camera_frame import Camera, to_stamp
from node_harness import stamp_key
from node_rig import Diag, NodeRig, counter_delta

pytestmark = pytest.mark.ros

INFO_SETTLE_S = 0.4  # CameraInfo and Image travel on separate topics: let the CameraInfo land first
ROWS: list[dict[str, Any]] = []
ORDERING_RETRIES: list[str] = []  # frames that overtook their CameraInfo (reported with the table)


@pytest.fixture(scope="module")
def camera() -> Camera:
    return Camera.tum(width=160)


@pytest.fixture(scope="module")
def rigs(camera):
    """The raw-input and the compressed-input node, started together, each fed a good CameraInfo."""
    raw = NodeRig("/dav2_robust_raw").launch()
    compressed = NodeRig("/dav2_robust_jpeg", transport="compressed").launch()
    try:
        raw.connect()
        compressed.connect()
        for rig in (raw, compressed):
            rig.publish(camera.camera_info(time.time()))
            time.sleep(INFO_SETTLE_S)
            good = camera.jpeg(time.time()) if rig is compressed else camera.image(time.time())
            rig.wait_outputs(good)
        yield {"raw": raw, "compressed": compressed}
    finally:
        raw.close()
        compressed.close()


# ----------------------------------------------------------------------------------- named cases
def _garbage(size: int, seed: int = 7) -> bytes:
    return bytes(np.random.default_rng(seed).integers(0, 256, size, np.uint8))


def _k(camera: Camera, **changes: float) -> np.ndarray:
    k = camera.k.copy()
    for index, value in changes.items():
        k[int(index[1:])] = value
    return k


FISHEYE_D = (0.1465167016954302, -0.2847343180128725, 0.00134017721235817, -0.004309553450829512, 0.0)


@dataclass(frozen=True)
class Case:
    """One kind of bad input, what the node must count and say, and what it publishes for that frame.

    expect: "rejected.<reason>" (nothing published), "cloud_skipped.<reason>" (depth only, no
    depth/camera_info or points) or "published" (everything, possibly after a warning).
    """

    kind: str
    topic: Literal["image", "compressed", "camera_info"]
    build: Callable[[Camera, float], Any]
    expect: str
    log: Optional[str]  # regex of the node's specific warning; None: no warning for this case
    note: str = ""

    @property
    def rig(self) -> str:
        return "compressed" if self.topic == "compressed" else "raw"

    @property
    def throttle_key(self) -> Optional[str]:
        """The node's throttling key for this case's warning (one warning per key per period, per node)."""
        if self.expect.startswith(("rejected.", "cloud_skipped.")):
            return f"{self.rig}:{self.expect.split('.', 1)[1]}"
        return None


W, H = 160, 120
CASES = [
    Case("Image encoding 16UC1 (depth)", "image",
         lambda c, t: altered_raw(c, t, encoding="16UC1", step=2 * W, data=2 * W * H),
         "rejected.unsupported_encoding", r"image rejected \(unsupported_encoding\): Image encoding '16UC1' is not "
         r"supported; use one of rgb8, bgr8"),
    Case("step smaller than width x channels", "image",
         lambda c, t: altered_raw(c, t, step=3 * W - 1, data=(3 * W - 1) * H),
         "rejected.bad_step", r"image rejected \(bad_step\): Image step 479 is smaller than width 160 x 3 bytes"),
    Case("data 1 byte shorter than height x step", "image", lambda c, t: altered_raw(c, t, data=3 * W * H - 1),
         "rejected.bad_data_size", r"image rejected \(bad_data_size\): Image data has 57599 bytes, expected height "
         r"120 x step 480 = 57600"),
    Case("zero width", "image", lambda c, t: altered_raw(c, t, width=0, step=0, data=b""),
         "rejected.bad_size", r"image rejected \(bad_size\): Image size 0x120 is outside 1\.\.16384"),
    Case("CameraInfo K all zeros", "camera_info", lambda c, t: c.camera_info(t, k=np.zeros(9)),
         "cloud_skipped.camera_info_k_zero", r"CameraInfo unusable \(k_zero\): CameraInfo\.k is all zeros"),
    Case("Image 1x300 (aspect 300:1)", "image", lambda c, t: altered_raw(c, t, width=300, height=1, step=900, data=900),
         "rejected.bad_aspect", r"image rejected \(bad_aspect\): image is 300x1, more elongated than 8:1"),
    Case("CompressedImage of random bytes", "compressed", lambda c, t: compressed_frame(c, t, "jpeg", _garbage(5000)),
         "rejected.decode_failed", r"image rejected \(decode_failed\): CompressedImage data \(5000 bytes, format "
         r"'jpeg', starts [0-9a-f]{16}\) is not a JPEG/PNG"),
    Case("CameraInfo K with NaN", "camera_info", lambda c, t: c.camera_info(t, k=_k(c, k0=np.nan)),
         "cloud_skipped.camera_info_k_not_finite", r"CameraInfo unusable \(k_not_finite\): CameraInfo\.k has NaN "
         r"or inf: \[\[nan"),
    Case("Image encoding bayer_rggb8", "image",
         lambda c, t: altered_raw(c, t, encoding="bayer_rggb8", step=W, data=W * H),
         "rejected.unsupported_encoding", r"image rejected \(unsupported_encoding\): Image encoding 'bayer_rggb8'"),
    Case("CompressedImage with empty data", "compressed", lambda c, t: compressed_frame(c, t, "jpeg", b""),
         "rejected.empty_data", r"image rejected \(empty_data\): CompressedImage \(format 'jpeg'\) has no data"),
    Case("height 100000, width 100000 declared, 57600 bytes", "image",
         lambda c, t: altered_raw(c, t, width=100_000, height=100_000, step=300_000),
         "rejected.bad_size", r"image rejected \(bad_size\): Image size 100000x100000 is outside 1\.\.16384"),
    Case("CameraInfo negative focal length", "camera_info", lambda c, t: c.camera_info(t, k=_k(c, k0=-c.k[0])),
         "cloud_skipped.camera_info_negative_focal", r"CameraInfo unusable \(negative_focal\): CameraInfo\.k has "
         r"fx=-131\.25, fy=131\.25; focal lengths must be positive"),
    Case("data 7 bytes longer than height x step", "image", lambda c, t: altered_raw(c, t, data=3 * W * H + 7),
         "rejected.bad_data_size", r"image rejected \(bad_data_size\): Image data has 57607 bytes, expected "),
    Case("CompressedImage format 'compressedDepth'", "compressed",
         lambda c, t: compressed_frame(c, t, "16UC1; compressedDepth png", bytes(c.jpeg(t).data)),
         "rejected.unsupported_format", r"image rejected \(unsupported_format\): CompressedImage format "
         r"'16UC1; compressedDepth png' is a depth transport"),
    Case("CameraInfo of another aspect (160x160 for 160x120 images)", "camera_info",
         lambda c, t: c.camera_info(t, width=160, height=160),
         "cloud_skipped.camera_info_aspect_mismatch", r"CameraInfo unusable \(aspect_mismatch\): CameraInfo is "
         r"160x160 but the image is 160x120"),
    Case("Image encoding yuv422", "image",
         lambda c, t: altered_raw(c, t, encoding="yuv422", step=2 * W, data=2 * W * H),
         "rejected.unsupported_encoding", r"image rejected \(unsupported_encoding\): Image encoding 'yuv422'"),
    Case("zero height", "image", lambda c, t: altered_raw(c, t, height=0, data=b""),
         "rejected.bad_size", r"image rejected \(bad_size\): Image size 160x0 is outside"),
    Case("CompressedImage format 'h264' of random bytes", "compressed",
         lambda c, t: compressed_frame(c, t, "h264", _garbage(3000, seed=11)),
         "rejected.decode_failed", r"image rejected \(decode_failed\): CompressedImage data \(3000 bytes, format "
         r"'h264'"),
    Case("CameraInfo K with inf", "camera_info", lambda c, t: c.camera_info(t, k=_k(c, k4=np.inf)),
         "cloud_skipped.camera_info_k_not_finite", r"CameraInfo unusable \(k_not_finite\): CameraInfo\.k has NaN or "
         r"inf: \[\[131\.25, 0\.0, 79\.5\], \[0\.0, inf,"),
    Case("Image encoding 32FC1", "image", lambda c, t: altered_raw(c, t, encoding="32FC1", step=4 * W, data=4 * W * H),
         "rejected.unsupported_encoding", r"image rejected \(unsupported_encoding\): Image encoding '32FC1'"),
    Case("PNG header declaring 100000x100000", "compressed", lambda c, t: compressed_frame(c, t, "png", png_header(
        100_000, 100_000)), "rejected.bad_size", r"image rejected \(bad_size\): CompressedImage declared size "
         r"100000x100000 is outside"),
    Case("16000x16000 declared (256 Mpx), 57600 bytes", "image",
         lambda c, t: altered_raw(c, t, width=16_000, height=16_000, step=48_000),
         "rejected.bad_size", r"image rejected \(bad_size\): Image size 16000x16000 has more than 67108864 pixels"),
    Case("CompressedImage format 'h264' carrying a JPEG", "compressed", lambda c, t: compressed_frame(
        c, t, "h264", bytes(c.jpeg(t).data)), "published", None,
         note="accepted: the bytes decide the codec, the format string is free text"),
    Case("is_bigendian=1 on rgb8", "image", lambda c, t: altered_raw(c, t, is_bigendian=1), "published", None,
         note="accepted: 8-bit channels have no byte order"),
    Case("CameraInfo at half size (80x60, K scaled)", "camera_info", lambda c, t: c.camera_info(
        t, width=80, height=60, k=_k(c, k0=c.k[0] / 2, k4=c.k[4] / 2, k2=(c.k[2] + 0.5) / 2 - 0.5,
                                     k5=(c.k[5] + 0.5) / 2 - 0.5)),
         "published",
         r"CameraInfo is 80x60 but images are 160x120: scaling K to the image size \(fx 65\.6 -> 131\.[23]\)",
         note="scaled to the image (pixel-centre convention), said once per size pair"),
    Case("CameraInfo with distortion D != 0", "camera_info", lambda c, t: c.camera_info(t, d=FISHEYE_D),
         "published", r"CameraInfo on /dav2_robust_raw/camera_info has non-zero distortion D = \[0\.14652, "
         r"-0\.28473.*assumed to be rectified", note="K used as is, input assumed rectified, said once"),
    Case("Image encoding '' (empty)", "image", lambda c, t: altered_raw(c, t, encoding=""),
         "rejected.unsupported_encoding", r"image rejected \(unsupported_encoding\): Image encoding '' is not"),
]


def _spread(cases: list[Case], gap: int = 4) -> list[Case]:
    """The cases reordered so that two with the same throttling key are at least `gap` cases apart where
    possible (each case takes over a second, so the node's per-reason warning period has mostly passed)."""
    remaining, ordered = list(cases), []
    while remaining:
        recent = {c.throttle_key for c in ordered[-gap:]}
        left = {key: sum(c.throttle_key == key for c in remaining) for key in {c.throttle_key for c in remaining}}
        choice = min(remaining, key=lambda c: (c.throttle_key in recent and c.throttle_key is not None,
                                               -left[c.throttle_key] if c.throttle_key else 0))
        remaining.remove(choice)
        ordered.append(choice)
    return ordered


ORDERED_CASES = _spread(CASES)
_LAST_LOGGED: dict[str, float] = {}


def _wait_out_throttle(key: Optional[str]) -> None:
    """Sleep until a warning under `key` would be logged again (its period since the last one passed)."""
    if key is None or key not in _LAST_LOGGED:
        return
    remaining = _LAST_LOGGED[key] + WARN_PERIOD_S + 0.3 - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


def _send_bad(rig: NodeRig, camera: Camera, case: Case) -> tuple[Any, Diag, Diag]:
    """Publish the case's bad message (for CameraInfo cases: it, then a good frame); returns the frame
    and the node's counters before and after it was accounted for."""
    base = rig.wait_idle(time.time())
    stamp = time.time()
    if case.topic == "camera_info":
        info = case.build(camera, stamp)
        frame = camera.image(stamp)

        def send() -> None:
            rig.publish(info)
            time.sleep(INFO_SETTLE_S)
            rig.publish(frame)
    else:
        frame = case.build(camera, stamp)

        def send() -> None:
            rig.publish(frame)
    sent_at = time.time()
    send()
    _LAST_LOGGED[case.throttle_key or ""] = time.monotonic()
    after = rig.wait_idle(sent_at, base.frames_in + 1, resend=send)
    if case.expect.startswith("cloud_skipped.") and not counter_delta(base, after).get(case.expect):
        # The image overtook its CameraInfo (separate topics; the node may be descheduled for longer than
        # INFO_SETTLE_S on a loaded machine) and met the previous, good one. The bad one is the latest
        # now, so the next frame must meet it.
        ORDERING_RETRIES.append(case.kind)
        base, frame, sent_at = after, camera.image(time.time()), time.time()
        rig.publish(frame)
        after = rig.wait_idle(sent_at, base.frames_in + 1, resend=lambda: rig.publish(frame))
    return frame, base, after


def _send_good(rig: NodeRig, camera: Camera, restore_info: bool) -> tuple[bool, str]:
    """The next good frame (after a good CameraInfo if the case broke it): (all outputs right, why not)."""
    if restore_info:
        rig.publish(camera.camera_info(time.time()))
        time.sleep(INFO_SETTLE_S)
    good = camera.jpeg(time.time()) if rig.transport == "compressed" else camera.image(time.time())
    rig.publish(good)
    rig.wait_outputs(good, cloud=False)
    try:  # depth/camera_info and points follow depth/image at once, unless the frame met a bad CameraInfo
        depth, info, cloud = rig.wait_outputs(good, timeout=5.0)
    except AssertionError:
        if not restore_info:
            raise
        # The frame overtook the good CameraInfo on its way in (see _send_bad): the next one must be right.
        ORDERING_RETRIES.append("good frame after a CameraInfo case")
        good = camera.image(time.time())
        rig.publish(good)
        depth, info, cloud = rig.wait_outputs(good)
    try:
        camera.check_outputs(good, depth, info, cloud)
    except AssertionError as error:
        return False, str(error)
    return True, ""


def _log_line(rig: NodeRig, pattern: str) -> str:
    """The node's log line for `pattern`, without the `[LEVEL] [time] [node]: ` prefix."""
    line = rig.wait_for_log(pattern, timeout=10.0)
    return re.sub(r"^\[\w+\] \[[\d.]+\] \[[^\]]+\]: ", "", line)


@pytest.mark.parametrize("case", ORDERED_CASES, ids=[c.kind for c in ORDERED_CASES])
def test_bad_input_is_refused_counted_said_and_the_next_frame_is_right(rigs, camera, case):
    rig: NodeRig = rigs[case.rig]
    _wait_out_throttle(case.throttle_key)
    frame, base, after = _send_bad(rig, camera, case)
    delta = counter_delta(base, after)
    received = delta.pop("frames_in")
    message = _log_line(rig, case.log) if case.log else ""

    good_ok, why = _send_good(rig, camera, restore_info=case.topic == "camera_info")
    published = rig.outputs_for(frame.header.stamp)
    ROWS.append({"kind": case.kind, "input": case.topic, "message": message or case.note,
                 "counter": ", ".join(f"{k} +{v}" for k, v in delta.items() if k != "frames_out") or "-",
                 "published": "+".join(published) or "nothing", "next_good_frame_ok": good_ok,
                 "expect": case.expect})

    if case.expect.startswith("rejected."):
        reason = case.expect
        assert delta.get(reason, 0) + delta.get("frames_dropped", 0) == received and delta.get(reason, 0) >= 1, delta
        assert delta.get("frames_rejected") == delta[reason] and "frames_out" not in delta, delta
        assert published == [], f"{case.kind}: published {published} for a rejected frame"
    elif case.expect.startswith("cloud_skipped."):
        assert delta.get(case.expect, 0) >= 1 and delta.get("frames_out", 0) >= 1, delta
        assert "frames_rejected" not in delta, delta
        assert published == ["depth/image"], f"{case.kind}: expected depth only, got {published}"
    else:
        assert delta.get("frames_out", 0) >= 1 and "frames_rejected" not in delta, delta
        assert not any(k.startswith("cloud_skipped.") for k in delta), delta
        assert published == ["depth/image", "depth/camera_info", "points"], published
        # right for this frame too (for CameraInfo cases: the case's K, scaled to the image, gives the cloud)
        depth, info, cloud = (r.get(frame.header.stamp) for r in (rig.depth, rig.depth_info, rig.points))
        camera.check_outputs(frame, depth, info, cloud)
    assert good_ok, f"the good frame after '{case.kind}' came out wrong: {why}"
    assert rig.process.process.poll() is None, "the node exited"


def test_repeated_bad_input_is_counted_every_time_but_said_once_per_period(rigs, camera):
    rig: NodeRig = rigs["raw"]
    key = "unsupported_encoding"
    pattern = r"image rejected \(unsupported_encoding\): Image encoding 'bayer_rggb8'"
    _wait_out_throttle(f"raw:{key}")
    lines_before = len(re.findall(pattern, rig.log))
    base = rig.wait_idle(time.time())
    burst = 12
    for i in range(burst):
        rig.publish(altered_raw(camera, time.time(), encoding="bayer_rggb8", step=W, data=W * H))
        time.sleep(0.05)
    first = time.monotonic()
    after = rig.wait_idle(time.time(), base.frames_in + 1)
    delta = counter_delta(base, after)
    rejected = delta.get(f"rejected.{key}", 0)
    assert rejected + delta.get("frames_dropped", 0) == delta["frames_in"] >= burst - 2, delta
    assert rejected >= burst // 2, delta
    assert len(re.findall(pattern, rig.log)) == lines_before + 1, "the burst was not throttled to one warning"

    time.sleep(max(0.0, first + WARN_PERIOD_S + 0.3 - time.monotonic()))
    rig.publish(altered_raw(camera, time.time(), encoding="bayer_rggb8", step=W, data=W * H))
    line = rig.wait_for_log(pattern + r".*\((\d+) more like this in the last \d+ s\)", timeout=15.0)
    suppressed = int(re.search(r"\((\d+) more like this", line).group(1))
    assert suppressed == rejected - 1, (suppressed, rejected)
    _LAST_LOGGED[f"raw:{key}"] = time.monotonic()
    ROWS.append({"kind": f"{burst} x bayer_rggb8 within 1 s", "input": "image",
                 "message": f"1 warning, then '... ({suppressed} more like this in the last 5 s)'",
                 "counter": f"rejected.{key} +{rejected}", "published": "nothing", "next_good_frame_ok": True,
                 "expect": f"rejected.{key}"})


# ----------------------------------------------------------------------------------------- fuzz
_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc3": 3, "8uc4": 4, "8uc1": 1}
_OTHER_BYTES = {"16uc1": 2, "mono16": 2, "32fc1": 4, "bayer_rggb8": 1, "yuv422": 2, "rgb16": 6, "64fc1": 8}
_MAX_DATA = 64 * 1024
_UINT32 = 2**32 - 1


_SUPPORTED = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC3", "8UC4", "8UC1", "RGB8", "Bgr8"]
_UNSUPPORTED = ["16UC1", "mono16", "32FC1", "bayer_rggb8", "yuv422", "rgb16", "64FC1", ""]
_WEIRD_SIDES = [0, MAX_SIDE + 1, 100_000, _UINT32]


def _mostly(draw: Any, usual: Any, unusual: Any, one_in: int) -> Any:
    """Draw from `unusual` about once in `one_in` examples, else from `usual` (so most examples get past
    the first check and exercise the later ones)."""
    return draw(unusual) if draw(st.integers(1, one_in)) == one_in else draw(usual)


@st.composite
def image_fields(draw: Any) -> dict[str, Any]:
    """Image fields around the valid ones: encodings (supported, other ROS ones, arbitrary text), sides
    from 0 to 2^32-1, step exact/padded/short/arbitrary, data length exact/short/long/arbitrary, either
    byte order. Each field is usually plausible and sometimes broken, so every check gets reached."""
    encoding = _mostly(draw, st.sampled_from(_SUPPORTED),
                       st.sampled_from(_UNSUPPORTED) | st.text(alphabet=string.printable, max_size=10), 3)
    bpp = _CHANNELS.get(encoding.lower(), _OTHER_BYTES.get(encoding.lower(), 3))
    width = _mostly(draw, st.integers(1, 24), st.sampled_from(_WEIRD_SIDES), 6)
    height = _mostly(draw, st.integers(1, 24), st.sampled_from(_WEIRD_SIDES), 6)
    exact_step = width * bpp
    step_kind = _mostly(draw, st.sampled_from(["exact", "padded"]),
                        st.sampled_from(["short"]) | st.integers(0, _UINT32), 4)
    step = {"exact": exact_step, "padded": exact_step + draw(st.integers(1, 8)),
            "short": max(0, exact_step - draw(st.integers(1, 3)))}.get(step_kind, step_kind)
    step = min(step, _UINT32)
    length_kind = _mostly(draw, st.just("exact"), st.sampled_from(["short", "long"]) | st.integers(0, 4096), 4)
    exact_length = height * step
    if isinstance(length_kind, int):
        length = length_kind
    elif exact_length > _MAX_DATA:
        length = draw(st.integers(0, 4096))  # never send gigabytes: a declared size the data cannot match
    else:
        length = {"exact": exact_length, "short": max(0, exact_length - draw(st.integers(1, 5))),
                  "long": exact_length + draw(st.integers(1, 5))}[length_kind]
    seed = draw(st.integers(0, 2**32 - 1))
    data = bytes(np.random.default_rng(seed).integers(0, 256, length, np.uint8))
    return dict(encoding=encoding, width=width, height=height, step=step, data=data,
                is_bigendian=draw(st.integers(0, 1)))


def expected_rejections(fields: dict[str, Any]) -> set[str]:
    """Every reason the documented contract gives to refuse these fields (empty: the frame is valid);
    the node must name one of them. Written from the contract, not from the package's code."""
    encoding, width, height, step = fields["encoding"], fields["width"], fields["height"], fields["step"]
    channels = _CHANNELS.get(encoding.lower())
    reasons = set()
    if channels is None:
        reasons.add("unsupported_encoding")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE) or width * height > MAX_PIXELS:
        reasons.add("bad_size")
    elif channels is not None and step < width * channels:
        reasons.add("bad_step")
    if len(fields["data"]) != height * step:
        reasons.add("bad_data_size")
    if width and height and max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        reasons.add("bad_aspect")
    return reasons


_FUZZ_STATE: dict[str, Any] = {"examples": 0, "rejected": {}, "published": 0}


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time, the failing example is shown
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fields=image_fields())
def test_fuzzed_image_fields_are_refused_for_a_stated_reason_or_processed(rigs, fields):
    rig: NodeRig = rigs["raw"]
    msg = Image(header=Header(stamp=to_stamp(time.time()), frame_id="fuzz"), **fields)
    # Nothing else is sent during the fuzz: the previous example's final counters are this one's start.
    base = _FUZZ_STATE.get("after") or rig.wait_idle(time.time())
    sent_at = time.time()
    rig.publish(msg)
    after = rig.wait_idle(sent_at, base.frames_in + 1, resend=lambda: rig.publish(msg))
    delta = counter_delta(base, after)
    received = delta.pop("frames_in")
    expected = expected_rejections(fields)
    rejected = {k.split(".", 1)[1]: v for k, v in delta.items() if k.startswith("rejected.")}
    _FUZZ_STATE["examples"] += 1
    if expected:
        assert len(rejected) == 1, f"expected one of {expected}, counters changed: {delta}"
        (reason, count), = rejected.items()
        assert reason in expected, f"rejected as {reason}, but the contract says one of {expected}"
        assert count + delta.get("frames_dropped", 0) == received and "frames_out" not in delta, delta
        _FUZZ_STATE["rejected"][reason] = _FUZZ_STATE["rejected"].get(reason, 0) + 1
    else:
        assert not rejected and delta.get("frames_out", 0) >= 1, delta
        depth = rig.wait_outputs(msg, cloud=False)[0]
        assert (depth.height, depth.width) == (fields["height"], fields["width"])
        assert stamp_key(depth.header.stamp) == stamp_key(msg.header.stamp)
        _FUZZ_STATE["published"] += 1
    _FUZZ_STATE["after"] = after
    rig.depth.forget()
    assert rig.process.process.poll() is None, "the node exited"


def test_after_the_fuzz_a_good_frame_is_right(rigs, camera):
    good_ok, why = _send_good(rigs["raw"], camera, restore_info=True)
    assert good_ok, why
    counts = ", ".join(f"{k} {v}" for k, v in sorted(_FUZZ_STATE["rejected"].items()))
    ROWS.append({"kind": f"hypothesis: {_FUZZ_STATE['examples']} fuzzed Image messages", "input": "image",
                 "message": "as the named cases", "counter": f"rejected: {counts or 'none'}",
                 "published": f"{_FUZZ_STATE['published']} valid ones published at their size", "next_good_frame_ok":
                     good_ok, "expect": "reason within the contract's"})


def test_table_of_outcomes_and_clean_node_logs(rigs):
    """Print the table (pytest -s), write it when DAV2_ROBUSTNESS_OUT is set, and check both logs."""
    header = ("| bad input | node's message (first of its kind) | counter in /diagnostics | published for that frame "
              "| next good frame OK |")
    lines = [header, "|---|---|---|---|---|"]
    for row in ROWS:
        lines.append(f"| {row['kind']} | {row['message'].replace('|', '/')} | {row['counter']} | {row['published']} | "
                     f"{'yes' if row['next_good_frame_ok'] else 'NO'} |")
    if ORDERING_RETRIES:
        lines.append(f"\n(sent a second frame {len(ORDERING_RETRIES)} time(s) because an image overtook its CameraInfo "
                     f"on the way in: {', '.join(ORDERING_RETRIES)})")
    table = "\n".join(lines)
    print("\n" + table)
    out = os.environ.get("DAV2_ROBUSTNESS_OUT")
    if out:
        folder = pathlib.Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bad_input.json").write_text(json.dumps(ROWS, indent=2))
        (folder / "bad_input.md").write_text(table + "\n")
    for rig in rigs.values():
        rig.assert_clean_log()
        assert rig.process.process.poll() is None

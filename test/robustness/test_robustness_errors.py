"""The node's own error handling, in one node's life: every rejection reason an input over DDS can cause, a
model error (`internal_error`) and an out-of-memory error, in one order and then in the reverse one (so the
node's warnings and errors follow each other both ways), each refused frame counted exactly once under its
reason, said with its own line at its own severity, and the good frame after them right. Then: stamps rclpy
cannot represent (negative seconds, nanosec >= 1e9), a failure while handling one camera's error that must not
cost another camera its frame, and a mixed stream of good, bad and failing frames whose counters balance
(`frames_in = frames_out + frames_dropped + frames_rejected`) once it has stopped.

The node runs in this process (`InProcessNode`) so that its estimator can be wrapped by `EstimatorSpy`, whose
hook raises the injected error -- the only thing replaced; every input and output crosses real DDS. The node's
log is this process's stderr (`capfd`). `rejected.bad_data` is not here: it needs a `data` field that is not a
byte sequence, which a message that crossed DDS never has (test_conversions_image.py covers it).
"""

from __future__ import annotations

import collections
import re
import threading
import time
from types import SimpleNamespace
from typing import Any, Callable, Optional

import cv2
import numpy as np
import pytest
import torch
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from dav2_ros.node.depth_node import WARN_PERIOD_S
from dav2_ros.pipeline.processing import FrameProcessor
from estimator_spy import EstimatorSpy
from node_harness import DdsClient, InProcessNode, every, same_header, wait_until
from bad_frames import altered_raw, compressed_frame, png_header
from camera_frame import Camera
from rig_settings import BASE_PARAMS

pytestmark = pytest.mark.ros

TIMEOUT_S = 60.0
RESEND_S = 5.0  # best-effort input: a frame that has not arrived after this long is sent again
W, H = 160, 120
CUDA_OOM_TEXT = ("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 7.63 GiB of "
                 "which 1.10 GiB is free.")


class UnprintableError(RuntimeError):
    """An error whose message cannot be read (`str()` raises), as some extension errors have: the node's
    handler must still count and say it."""

    def __str__(self) -> str:
        raise RuntimeError("this error's message cannot be formatted")


# --------------------------------------------------------------------------------------------- the node
class FailNext:
    """The spy's `before_call`: raises the queued errors, one per estimator call, then lets calls through.
    `hold()` makes the next call wait until `release()` (to line frames of several cameras up behind it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: collections.deque = collections.deque()
        self.entered, self.released = threading.Event(), threading.Event()
        self.released.set()

    def push(self, action: Any) -> None:
        """An exception to raise at the next call, or "hold"."""
        with self._lock:
            self._queue.append(action)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def __call__(self, batch_size: int) -> None:
        with self._lock:
            action = self._queue.popleft() if self._queue else None
        if action == "hold":
            self.released.clear()
            self.entered.set()
            assert self.released.wait(TIMEOUT_S), "the test never released the held call"
        elif action is not None:
            raise action


def _start(stack: Any, params: dict, namespace: str, transport: str = "raw",
           cameras: tuple[str, ...] = ("",)) -> SimpleNamespace:
    """The node in this process with its estimator behind a `FailNext` spy, and a DDS client around it."""
    node_cm = InProcessNode(dict(BASE_PARAMS, input_transport=transport, **params), namespace=namespace)
    live = stack.enter_context(node_cm)
    client = stack.enter_context(DdsClient(f"dav2_errors_client{namespace.replace('/', '_')}"))
    node = live.node
    fail = FailNext()
    node._processor = FrameProcessor(EstimatorSpy(node._estimator, before_call=fail), node._processor.settings)
    image_type, image_topic = (CompressedImage, "image/compressed") if transport == "compressed" else (Image, "image")
    channels = {channel.name: channel for channel in node._channels}
    rig = SimpleNamespace(live=live, node=node, client=client, fail=fail, channels=channels, cams={})
    for name in cameras:
        prefix = f"{namespace}/{name}" if name else namespace
        cam = SimpleNamespace(
            name=name, channel=channels[name],
            image_pub=client.publisher(image_type, f"{prefix}/{image_topic}"),
            info_pub=client.publisher(CameraInfo, f"{prefix}/camera_info"),
            depth=client.collect(Image, f"{prefix}/depth/image"),
            info=client.collect(CameraInfo, f"{prefix}/depth/camera_info"),
            points=client.collect(PointCloud2, f"{prefix}/points"))
        client.wait_for_subscribers(cam.image_pub)
        client.wait_for_subscribers(cam.info_pub)
        client.wait_for_publishers(f"{prefix}/points")
        rig.cams[name] = cam
    return rig


def _give_camera_info(cam: SimpleNamespace, info: CameraInfo) -> None:
    """Until the node holds this CameraInfo (best-effort input: resent)."""
    def held() -> bool:
        cam.info_pub.publish(info)
        time.sleep(0.2)
        latest = cam.channel.camera.camera_info
        return latest is not None and latest.header.stamp == info.header.stamp
    wait_until(held, TIMEOUT_S, f"the CameraInfo of camera {cam.name!r} in the node")


# ---------------------------------------------------------------------------------------- counters, log
def counters(rig: SimpleNamespace, cam: SimpleNamespace) -> dict[str, int]:
    """The camera's counters as /diagnostics reports them (frames_*, rejected.*, cloud_skipped.*)."""
    dropped = rig.node._worker.slot.dropped_by_key.get(cam.name, 0)
    snap = cam.channel.stats.snapshot(dropped)
    values = {"frames_in": snap.frames_in, "frames_out": snap.frames_out, "frames_dropped": snap.dropped,
              "frames_rejected": sum(snap.rejected.values())}
    values.update({f"rejected.{k}": v for k, v in snap.rejected.items()})
    values.update({f"cloud_skipped.{k}": v for k, v in snap.cloud_skipped.items()})
    return values


def balanced(values: dict[str, int]) -> bool:
    """Every frame received is accounted for: published, dropped for a newer one, or rejected."""
    return values["frames_in"] == values["frames_out"] + values["frames_dropped"] + values["frames_rejected"]


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after))
            if after.get(k, 0) != before.get(k, 0)}


def settled(rig: SimpleNamespace, cam: SimpleNamespace, more_than: int = -1) -> dict[str, int]:
    """The counters once more than `more_than` frames came in and all of them are accounted for."""
    def check() -> Optional[dict[str, int]]:
        values = counters(rig, cam)
        return values if values["frames_in"] > more_than and balanced(values) else None
    return wait_until(check, TIMEOUT_S, f"camera {cam.name!r} idle with frames_in > {more_than}")


class NodeLog:
    """The node's log (this process's stdout + stderr while the test runs), read as it grows."""

    def __init__(self, capfd: Any) -> None:
        self._capfd = capfd
        self.text = ""

    def read(self) -> str:
        out, err = self._capfd.readouterr()
        self.text += out + err
        return self.text

    def wait_for(self, pattern: str, since: int, timeout: float = 10.0) -> str:
        """The first line matching `pattern` written after offset `since`."""
        regex = re.compile(pattern)
        match = wait_until(lambda: regex.search(self.read(), since), timeout, f"/{pattern}/ in the node's log")
        end = self.text.find("\n", match.start())
        return self.text[self.text.rfind("\n", 0, match.start()) + 1: end if end >= 0 else None]

    def error_lines(self) -> list[str]:
        return [line for line in self.read().splitlines() if "[ERROR]" in line or "[FATAL]" in line]


# ------------------------------------------------------------------------------------------------ frames
def _elongated_raw(camera: Camera, stamp: float) -> Image:
    """A 2000x10 rgb8 image: valid, but far more elongated than the model takes (and than the CameraInfo)."""
    pixels = np.ascontiguousarray(np.tile(camera.pixels[:10], (1, 13, 1))[:, :2000])
    return Image(header=camera.header(stamp), height=10, width=2000, encoding="rgb8", step=6000,
                 data=pixels.tobytes())


def _elongated_jpeg(camera: Camera, stamp: float) -> CompressedImage:
    pixels = np.ascontiguousarray(np.tile(camera.pixels[:10], (1, 13, 1))[:, :2000])
    ok, encoded = cv2.imencode(".jpg", pixels)
    assert ok
    return CompressedImage(header=camera.header(stamp), format="jpeg", data=encoded.tobytes())


def _good(camera: Camera, transport: str, stamp: float) -> Any:
    return camera.jpeg(stamp) if transport == "compressed" else camera.image(stamp)


# ------------------------------------------------------------------------------------------------- cases
class Case:
    """One refused frame: how to make it, the one counter it must move, and the node's line for it.

    `inject`: an error the estimator raises for this (good) frame, or None for a frame refused on its own.
    """

    def __init__(self, reason: str, build: Callable[[Camera, str, float], Any], log: str, severity: str = "WARN",
                 inject: Optional[Callable[[], BaseException]] = None) -> None:
        self.reason, self.build, self.log, self.severity, self.inject = reason, build, log, severity, inject

    @property
    def throttle_key(self) -> str:
        """The node throttles its lines per camera and reason (errors per reason)."""
        return self.reason if self.severity == "ERROR" else f":{self.reason}"


FAILURES = [
    Case("internal_error", lambda c, t, s: _good(c, t, s),
         r"frame failed with RuntimeError: injected model failure \(shape mismatch\)", "ERROR",
         inject=lambda: RuntimeError("injected model failure (shape mismatch)")),
    Case("out_of_memory", lambda c, t, s: _good(c, t, s),
         r"frame skipped: out of memory on cpu at input_size 70 \(OutOfMemoryError: CUDA out of memory\. Tried to "
         r"allocate 20\.00 GiB\. GPU 0 has a total capacity of 7\.63 GiB of which 1\.10 GiB is free\.\); carrying "
         r"on with the next frame", "ERROR", inject=lambda: torch.cuda.OutOfMemoryError(CUDA_OOM_TEXT)),
]
REFUSALS = {
    "raw": [
        Case("unsupported_encoding", lambda c, t, s: altered_raw(c, s, encoding="yuv422", step=2 * W, data=2 * W * H),
             r"image rejected \(unsupported_encoding\): Image encoding 'yuv422' is not supported"),
        Case("bad_size", lambda c, t, s: altered_raw(c, s, width=0, step=0, data=b""),
             r"image rejected \(bad_size\): Image size 0x120 is outside 1\.\.16384 pixels per side"),
        Case("bad_step", lambda c, t, s: altered_raw(c, s, step=3 * W - 1, data=(3 * W - 1) * H),
             r"image rejected \(bad_step\): Image step 479 is smaller than width 160 x 3 bytes"),
        Case("bad_data_size", lambda c, t, s: altered_raw(c, s, data=3 * W * H - 1),
             r"image rejected \(bad_data_size\): Image data has 57599 bytes, expected height 120 x step 480"),
        Case("bad_aspect", lambda c, t, s: _elongated_raw(c, s),
             r"image rejected \(bad_aspect\): image is 2000x10, more elongated than 8:1"),
    ],
    "compressed": [
        Case("empty_data", lambda c, t, s: compressed_frame(c, s, "jpeg", b""),
             r"image rejected \(empty_data\): CompressedImage \(format 'jpeg'\) has no data"),
        Case("decode_failed", lambda c, t, s: compressed_frame(c, s, "jpeg", bytes(range(256)) * 8),
             r"image rejected \(decode_failed\): CompressedImage data \(2048 bytes, format 'jpeg'"),
        Case("unsupported_format", lambda c, t, s: compressed_frame(c, s, "16UC1; compressedDepth png",
                                                                    bytes(c.jpeg(s).data)),
             r"image rejected \(unsupported_format\): CompressedImage format '16UC1; compressedDepth png'"),
        Case("bad_size", lambda c, t, s: compressed_frame(c, s, "png", png_header(100_000, 100_000)),
             r"image rejected \(bad_size\): CompressedImage declared size 100000x100000 is outside"),
        Case("bad_aspect", lambda c, t, s: _elongated_jpeg(c, s),
             r"image rejected \(bad_aspect\): image is 2000x10, more elongated than 8:1"),
    ],
}


@pytest.fixture(scope="module")
def camera() -> Camera:
    return Camera.tum(width=W)


@pytest.fixture(scope="module")
def raw_rig(camera):
    from contextlib import ExitStack

    with ExitStack() as stack:
        rig = _start(stack, {}, "/dav2_errors_raw")
        _give_camera_info(rig.cams[""], camera.camera_info(time.time()))
        yield rig


@pytest.fixture(scope="module")
def compressed_rig(camera):
    from contextlib import ExitStack

    with ExitStack() as stack:
        rig = _start(stack, {}, "/dav2_errors_jpeg", transport="compressed")
        _give_camera_info(rig.cams[""], camera.camera_info(time.time()))
        yield rig


def _send(rig: SimpleNamespace, cam: SimpleNamespace, msg: Any, inject: Optional[BaseException] = None,
          what: str = "the frame") -> tuple[dict[str, int], dict[str, int]]:
    """Publish `msg` (with `inject` queued for the estimator) and return the counters before and after the
    node accounted for it."""
    before = settled(rig, cam)
    if inject is not None:
        rig.fail.push(inject)
    cam.image_pub.publish(msg)
    again = every(RESEND_S, lambda: cam.image_pub.publish(msg))
    try:
        after = wait_until(lambda: ((c := counters(rig, cam))["frames_in"] > before["frames_in"] and balanced(c)
                                    and c) or again(), TIMEOUT_S, f"{what} accounted for")
    except AssertionError as error:
        raise AssertionError(f"{error}: counters {before} before it, {counters(rig, cam)} now") from None
    return before, after


def _check_good_frame(rig: SimpleNamespace, cam: SimpleNamespace, camera: Camera, transport: str) -> None:
    """A good frame: counted as published, and its depth, depth CameraInfo and cloud right."""
    good = _good(camera, transport, time.time())
    before, after = _send(rig, cam, good)
    change = delta(before, after)
    assert change == {"frames_in": change["frames_in"], "frames_out": change["frames_in"]}, change
    outputs = [c.wait_for(lambda m: same_header(m, good), TIMEOUT_S) for c in (cam.depth, cam.info, cam.points)]
    camera.check_outputs(good, *outputs)


# ------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_every_refusal_and_failure_counted_once_and_said_in_both_orders(request, camera, transport, capfd):
    """Pass 1: the model error and out of memory (errors), then every refusal (warnings); pass 2 the same in
    the reverse order. Each frame: exactly its own counter +1 (frames_rejected with it, nothing else: no
    cloud_skipped for the elongated image), exactly one line of its own at its severity, nothing published;
    the good frame after each pass right."""
    rig = request.getfixturevalue(f"{transport}_rig")
    cam = rig.cams[""]
    log = NodeLog(capfd)
    cases = FAILURES + REFUSALS[transport]
    last_said: dict[str, float] = {}
    for order in (cases, cases[::-1]):
        for case in order:
            wait = last_said.get(case.throttle_key, -1e9) + WARN_PERIOD_S + 0.3 - time.monotonic()
            if wait > 0:  # the node says each kind at most once per period: wait it out to see the line
                time.sleep(wait)
            since = len(log.read())
            msg = case.build(camera, transport, time.time())
            before, after = _send(rig, cam, msg, case.inject() if case.inject else None, f"the {case.reason} frame")
            last_said[case.throttle_key] = time.monotonic()
            change = delta(before, after)
            n = change.get("frames_in", 0)
            assert change == {"frames_in": n, "frames_rejected": n, f"rejected.{case.reason}": n}, \
                f"{case.reason}: {change}"
            line = log.wait_for(case.log, since)
            assert f"[{case.severity}]" in line, f"{case.reason} said at the wrong severity: {line}"
            assert not [m for c in (cam.depth, cam.info, cam.points) for m in c.messages
                        if m.header.stamp == msg.header.stamp], f"{case.reason}: something was published"
        _check_good_frame(rig, cam, camera, transport)

    text = log.read()
    for case in cases:
        assert len(re.findall(case.log, text)) == 2, f"{case.reason}: expected its line once per pass"
    assert "CameraInfo unusable" not in text, "a refused elongated image was also taken for a CameraInfo problem"
    assert "Traceback" not in text
    errors = log.error_lines()
    assert len(errors) == 4 and all(re.search(FAILURES[0].log, e) or re.search(FAILURES[1].log, e)
                                    for e in errors), errors
    assert rig.live._thread.is_alive() and rig.node._worker._thread.is_alive()


def test_stamps_rclpy_cannot_represent_are_published_as_they_came(raw_rig, camera, capfd):
    """Negative seconds or nanosec >= 1e9 (valid builtin_interfaces/Time values that rclpy's Time refuses):
    every output carries the input header exactly, each frame counts as published (never internal_error), and
    the node says once per camera, as a warning, that such frames are left out of its stamp age."""
    rig, cam, log = raw_rig, raw_rig.cams[""], NodeLog(capfd)
    for sec, nanosec in ((-1, 500), (-2_000_000_000, 0), (1_700_000_000, 1_500_000_000), (-1, 500)):
        frame = camera.image(time.time())
        frame.header.stamp.sec, frame.header.stamp.nanosec = sec, nanosec
        before, after = _send(rig, cam, frame)
        change = delta(before, after)
        assert change == {"frames_in": change["frames_in"], "frames_out": change["frames_in"]}, (sec, change)
        outputs = [c.wait_for(lambda m, f=frame: same_header(m, f), TIMEOUT_S) for c in (cam.depth, cam.info,
                                                                                         cam.points)]
        camera.check_outputs(frame, *outputs)
    _check_good_frame(rig, cam, camera, "raw")
    text = log.read()
    lines = [line for line in text.splitlines() if "stamp" in line]
    assert len(lines) == 1, f"expected one line about the stamps, got {lines}"
    assert "[WARN]" in lines[0] and "sec=-1 nanosec=500" in lines[0] and "stamp_age" in lines[0], lines[0]
    assert "Traceback" not in text and "[ERROR]" not in text, text


def test_a_failure_in_one_cameras_error_handling_costs_the_other_camera_nothing(camera, capfd):
    """Two cameras, one worker round: front's frame fails with an error whose message cannot even be
    formatted, rear's frame waits in the same round behind it. Front: internal_error +1, said; rear: its
    frame published, nothing else counted."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        rig = _start(stack, {"cameras": ["front", "rear"], "batch_cameras": "off"}, "/dav2_errors_cameras",
                     cameras=("front", "rear"))
        front, rear = rig.cams["front"], rig.cams["rear"]
        for cam in (front, rear):
            _give_camera_info(cam, camera.camera_info(time.time()))
        log = NodeLog(capfd)
        for round_ in range(2):  # the second round: the node goes on after the first
            if round_:
                time.sleep(WARN_PERIOD_S + 0.3)  # the node says each kind at most once per period
            base = {name: settled(rig, cam) for name, cam in rig.cams.items()}
            opener = camera.image(time.time())
            rig.fail.push("hold")
            rig.fail.entered.clear()
            again = every(RESEND_S, lambda: front.image_pub.publish(opener))
            front.image_pub.publish(opener)
            wait_until(lambda: rig.fail.entered.is_set() or again(), TIMEOUT_S, "the worker held on the first frame")
            rig.fail.push(UnprintableError("front's frame failed"))
            bad = camera.image(time.time() + 1)
            good = camera.image(time.time() + 2)
            bad.header.frame_id, good.header.frame_id = "front_optical", "rear_optical"
            for cam, msg in ((front, bad), (rear, good)):
                cam.image_pub.publish(msg)
                resend = every(RESEND_S, lambda c=cam, m=msg: c.image_pub.publish(m))
                wait_until(lambda c=cam: counters(rig, c)["frames_in"] > base[c.name]["frames_in"] +
                           (1 if c is front else 0) or resend(), TIMEOUT_S, f"{cam.name}'s frame waiting")
            since = len(log.read())
            rig.fail.released.set()
            rear.depth.wait_for(lambda m: same_header(m, good), TIMEOUT_S)
            after = {name: settled(rig, cam) for name, cam in rig.cams.items()}
            front_change = delta(base["front"], after["front"])
            assert front_change == {"frames_in": 2, "frames_out": 1, "frames_rejected": 1,
                                    "rejected.internal_error": 1}, front_change
            assert delta(base["rear"], after["rear"]) == {"frames_in": 1, "frames_out": 1}
            line = log.wait_for(r"\[ERROR\].*frame failed with UnprintableError", since)
            assert "cameras: front" in line and "rear" not in line, line
        text = log.read()
        assert "Traceback" not in text
        assert rig.node._worker._thread.is_alive()


def test_a_mixed_stream_balances_once_it_stops(raw_rig, camera, capfd, request):
    """Good frames, every raw refusal and injected failures, sent back to back at ~20 Hz (the worker drops
    what it cannot take): once the stream stops, every frame the node received is published, dropped or
    rejected, each rejection under a reason, and /diagnostics over DDS says the same."""
    from diagnostic_msgs.msg import DiagnosticArray

    rig, cam, log = raw_rig, raw_rig.cams[""], NodeLog(capfd)
    diagnostics = rig.client.collect(DiagnosticArray, "/diagnostics")
    before = settled(rig, cam)
    kinds = [None] + REFUSALS["raw"] + [None] + FAILURES
    sent = 0
    for i in range(60):
        kind = kinds[i % len(kinds)]
        if kind is not None and kind.inject is not None:
            rig.fail.push(kind.inject())
        msg = (kind.build(camera, "raw", time.time()) if kind is not None else camera.image(time.time()))
        cam.image_pub.publish(msg)
        sent += 1
        time.sleep(0.05)
    after = settled(rig, cam, before["frames_in"])
    time.sleep(0.5)  # late arrivals of the stream
    after = settled(rig, cam)
    rig.fail.clear()
    change = delta(before, after)
    if request.config.getoption("capture") == "no":  # pytest -s shows the counters
        with capfd.disabled():
            print(f"\nmixed stream: {sent} frames sent; the node's counters moved by {change}")
    assert 0 < change["frames_in"] <= sent
    assert change["frames_in"] == (change.get("frames_out", 0) + change.get("frames_dropped", 0)
                                   + change.get("frames_rejected", 0)), change
    assert change.get("frames_rejected", 0) == sum(v for k, v in change.items() if k.startswith("rejected.")), change
    assert set(k for k in change if k.startswith("rejected.")) <= {f"rejected.{c.reason}" for c in kinds if c}
    assert not [k for k in change if k.startswith("cloud_skipped.")], change

    def reported() -> Optional[dict[str, str]]:
        """The latest status over DDS once it counts every frame of the stream and balances (a status taken
        while a frame was in the model does not; a frame of the stream that arrived late shows as frames_in
        above `after`)."""
        for array in reversed(diagnostics.messages):
            for status in array.status:
                if status.name.startswith(f"{rig.live.fqn}:"):
                    values = {kv.key: kv.value for kv in status.values}
                    settled_status = int(values["frames_in"]) == (
                        int(values["frames_out"]) + int(values["frames_dropped"]) + int(values["frames_rejected"]))
                    return values if int(values["frames_in"]) >= after["frames_in"] and settled_status else None
        return None
    values = wait_until(reported, 30.0, "/diagnostics balanced with the final counters")
    assert int(values["frames_rejected"]) == sum(int(v) for k, v in values.items() if k.startswith("rejected."))
    if int(values["frames_in"]) == after["frames_in"]:
        for key, count in after.items():
            assert int(values.get(key, "0")) == count, (key, values)
    text = log.read()
    assert "Traceback" not in text
    errors = log.error_lines()
    assert all(re.search(FAILURES[0].log, e) or re.search(FAILURES[1].log, e) for e in errors), errors
    _check_good_frame(rig, cam, camera, "raw")


def test_a_failing_diagnostics_status_is_said_and_the_node_goes_on(raw_rig, camera, capfd):
    """The 1 Hz /diagnostics timer runs on the executor: an error there (here its model description is made
    unreadable) is said as a throttled [ERROR] and costs that status only; the executor keeps delivering frames."""
    rig, cam, log = raw_rig, raw_rig.cams[""], NodeLog(capfd)
    model_info = rig.node._model_info
    rig.node._model_info = {}  # every status needs model_info["device"]: KeyError in the timer's callback
    try:
        since = len(log.read())
        line = log.wait_for(r"diagnostics not published: KeyError: 'device'", since, timeout=15.0)
        assert "[ERROR]" in line, line
        _check_good_frame(rig, cam, camera, "raw")
        assert rig.live._thread.is_alive(), "the executor's spin ended"
    finally:
        rig.node._model_info = model_info
    assert "Traceback" not in log.read()

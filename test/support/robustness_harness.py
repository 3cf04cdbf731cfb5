"""The depth node under stress, for the robustness tests and test/campaigns/robustness.py.

- `Camera`: a real frame (TUM RGB-D's Kinect image) at a chosen size with its CameraInfo scaled to
  it, and an independent check that the node's depth, depth CameraInfo and cloud for it are right.
- `NodeRig`: the node as a subprocess in its own namespace plus a DDS client that publishes inputs,
  records outputs with their arrival times (`node_harness.Recorder`), follows the node's /diagnostics
  counters and samples the node's RSS.
- `run_stream`, `run_burst`, `run_soak`, `run_restart`: the overload, burst, soak and kill/restart
  scenarios as functions that return their figures (the CI tests call them short, the slow tests
  and the script long).

Nothing is mocked: frames cross real DDS into the real node process.
"""

from __future__ import annotations

import array
import dataclasses
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

import cv2
import numpy as np
import psutil
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from bags import read_topics
from node_harness import (
    PROJECT_DIR,
    Arrival,
    DdsClient,
    NodeProcess,
    Recorder,
    cloud_fields,
    image_array,
    stamp_key,
    wait_until,
)

BAGS_DIR = PROJECT_DIR / "test" / "data" / "bags"

# How every robustness test runs the node: stand-in weights, CPU fp32, one inference thread (the
# machine is shared; more threads than free cores makes torch many times slower, not faster); backend torch,
# whose speed the overload scenarios are sized for (the default OpenVINO engine is tested on its own). No
# flying-pixel filter: random weights' depth jumps everywhere, so it would blank most pixels, and
# `Camera.check_outputs` wants most of them finite (the filter has its own tests: test_node_depth_filters.py).
BASE_PARAMS: dict[str, Any] = {
    "allow_random_weights": True, "weights_dir": "/nonexistent/dav2_weights", "device": "cpu", "backend": "torch",
    "precision": "fp32", "num_threads": 1, "input_size": 70, "min_depth": 0.1, "max_valid_depth": 20.0,
    "flying_pixel_threshold": 0.0,
}
STARTUP_S = 180.0
OUTPUT_TIMEOUT_S = 90.0
DIAGNOSTICS_TIMEOUT_S = 30.0
# Inputs go best effort into the node (sensor-data QoS): a frame may be lost in transport, so waits re-send.
RESEND_AFTER_S = 3.0
_OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)


# ----------------------------------------------------------------------------------------- stamps
def to_stamp(seconds: float) -> TimeMsg:
    """A builtin_interfaces/Time for wall-clock `seconds`."""
    sec = int(seconds)
    return TimeMsg(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def stamp_seconds(stamp: Any) -> float:
    """A header stamp as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


# ----------------------------------------------------------------------------------------- camera
@dataclass
class Camera:
    """One real camera frame (rgb8) at `width` x `height` and the CameraInfo that describes it."""

    pixels: np.ndarray  # HxWx3 uint8, RGB
    k: np.ndarray  # 9 floats, row-major, for this size
    frame_id: str
    _data: array.array = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._data = array.array("B", np.ascontiguousarray(self.pixels).tobytes())

    @classmethod
    def tum(cls, width: int = 160) -> "Camera":
        """TUM RGB-D's 640x480 Kinect frame resized to `width` (4:3), K scaled pixel-centre consistently
        (fx' = fx s, cx' = (cx + 0.5) s - 0.5; computed here, not with the package)."""
        messages = read_topics(BAGS_DIR / "tum_rgbd", as_rclpy=True)
        image: Image = messages["/camera/color/image_raw"][0]
        info: CameraInfo = messages["/camera/color/camera_info"][0]
        assert image.encoding == "rgb8"
        raw = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.step)
        full = raw[:, : image.width * 3].reshape(image.height, image.width, 3)
        scale = width / image.width
        height = int(round(image.height * scale))
        pixels = full if scale == 1 else cv2.resize(full, (width, height), interpolation=cv2.INTER_AREA)
        k = np.asarray(info.k, dtype=np.float64).copy()
        k[0], k[4] = k[0] * scale, k[4] * scale
        k[2], k[5] = (k[2] + 0.5) * scale - 0.5, (k[5] + 0.5) * scale - 0.5
        return cls(np.ascontiguousarray(pixels), k, image.header.frame_id)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def header(self, stamp: float) -> Header:
        return Header(stamp=to_stamp(stamp), frame_id=self.frame_id)

    def image(self, stamp: float) -> Image:
        """The frame as rgb8 with `stamp` (the byte buffer is shared, never copied)."""
        return Image(header=self.header(stamp), height=self.height, width=self.width, encoding="rgb8",
                     is_bigendian=0, step=3 * self.width, data=self._data)

    def jpeg(self, stamp: float, fmt: str = "rgb8; jpeg compressed bgr8") -> CompressedImage:
        """The frame as a JPEG CompressedImage (image_transport's format string by default)."""
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(self.pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        return CompressedImage(header=self.header(stamp), format=fmt, data=encoded.tobytes())

    def camera_info(self, stamp: float, width: Optional[int] = None, height: Optional[int] = None,
                    k: Optional[Sequence[float]] = None, d: Sequence[float] = (0.0,) * 5) -> CameraInfo:
        """This camera's CameraInfo (or one with another size / K / D, for the fault cases)."""
        k_values = np.asarray(self.k if k is None else k, dtype=np.float64)
        fx, cx, fy, cy = k_values[0], k_values[2], k_values[4], k_values[5]
        return CameraInfo(header=self.header(stamp), width=width or self.width, height=height or self.height,
                          distortion_model="plumb_bob", d=np.asarray(d, dtype=np.float64), k=k_values,
                          r=np.eye(3).reshape(9), p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], np.float64))

    def check_outputs(self, sent: Any, depth: Image, depth_info: Optional[CameraInfo] = None,
                      cloud: Optional[PointCloud2] = None, k: Optional[np.ndarray] = None) -> None:
        """AssertionError unless the node's outputs for `sent` are right: 32FC1 meters of the image's size
        and header, finite depth within the validity range, depth CameraInfo = K at that size, and a cloud
        equal to an independent pinhole back-projection of the depth."""
        expected_k = self.k if k is None else np.asarray(k, dtype=np.float64)
        assert depth.encoding == "32FC1", depth.encoding
        assert (depth.height, depth.width) == (self.height, self.width), (depth.height, depth.width)
        assert stamp_key(depth.header.stamp) == stamp_key(sent.header.stamp)
        assert depth.header.frame_id == sent.header.frame_id
        values = image_array(depth)
        finite = values[np.isfinite(values)]
        assert finite.size > 0.5 * values.size, f"only {finite.size} of {values.size} depths are finite"
        assert finite.min() >= BASE_PARAMS["min_depth"] and finite.max() <= BASE_PARAMS["max_valid_depth"]
        if depth_info is not None:
            assert stamp_key(depth_info.header.stamp) == stamp_key(sent.header.stamp)
            assert (depth_info.width, depth_info.height) == (self.width, self.height)
            np.testing.assert_allclose(np.asarray(depth_info.k), expected_k, rtol=0, atol=1e-9)
        if cloud is not None:
            assert stamp_key(cloud.header.stamp) == stamp_key(sent.header.stamp)
            assert cloud.header.frame_id == sent.header.frame_id and not cloud.is_dense
            fields = cloud_fields(cloud)
            xyz = np.stack([fields["x"], fields["y"], fields["z"]], axis=-1)
            expected = pinhole_points(values, expected_k)
            assert xyz.shape == expected.shape, (xyz.shape, expected.shape)
            assert np.array_equal(np.isnan(xyz), np.isnan(expected)), "NaN points differ from NaN depths"
            np.testing.assert_allclose(xyz, expected, rtol=0, atol=1e-5, equal_nan=True)


def pinhole_points(depth: np.ndarray, k: np.ndarray) -> np.ndarray:
    """x, y, z of every pixel from the pinhole model, in float64 (independent of the package)."""
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    rows = np.arange(depth.shape[0], dtype=np.float64)[:, None]
    cols = np.arange(depth.shape[1], dtype=np.float64)[None, :]
    z = depth.astype(np.float64)
    return np.stack([(cols - cx) * z / fx, (rows - cy) * z / fy, z], axis=-1)


# ----------------------------------------------------------------------------------- recording
@dataclass(frozen=True)
class Diag:
    """One /diagnostics status of the node under test."""

    stamp: float  # the node's clock when it was published
    level: int
    message: str
    values: Mapping[str, str]

    def count(self, key: str) -> int:
        """An integer counter (0 when the node has not reported that key yet)."""
        return int(self.values.get(key, "0"))

    @property
    def frames_in(self) -> int:
        return self.count("frames_in")

    @property
    def accounted(self) -> int:
        """Frames that left the node one way or another: published, dropped for a newer one, rejected."""
        return self.count("frames_out") + self.count("frames_dropped") + self.count("frames_rejected")

    @property
    def backlog(self) -> int:
        """Frames received but neither published, dropped nor rejected yet (in the slot or in the model)."""
        return self.frames_in - self.accounted

    def counters(self) -> dict[str, int]:
        """Every integer-valued key: frames_*, rejected.*, cloud_skipped.*."""
        return {key: int(value) for key, value in self.values.items()
                if key.startswith(("frames_", "rejected.", "cloud_skipped."))}


def counter_delta(before: Diag, after: Diag) -> dict[str, int]:
    """Counters that changed between two snapshots, and by how much."""
    a, b = before.counters(), after.counters()
    return {key: b.get(key, 0) - a.get(key, 0) for key in sorted(set(a) | set(b)) if b.get(key, 0) != a.get(key, 0)}


# ----------------------------------------------------------------------------------------- the rig
class NodeRig:
    """The depth node (`python -m dav2_ros.node.depth_node`) in `namespace` and a client around it."""

    def __init__(self, namespace: str, params: Optional[Mapping[str, Any]] = None,
                 transport: Literal["raw", "compressed"] = "raw", keep_messages: bool = True,
                 client_name: Optional[str] = None) -> None:
        self.namespace = namespace
        self.params = dict(BASE_PARAMS, **(params or {}), input_transport=transport)
        self.transport = transport
        self.fqn = f"{namespace}/depth_node"
        self.process: Optional[NodeProcess] = None
        self._keep = keep_messages
        self._client_name = client_name or f"robustness_client{namespace.replace('/', '_')}"
        self.client: Optional[DdsClient] = None
        self._diag_lock = threading.Lock()
        self._diags: list[Diag] = []
        self._last_info: Optional[CameraInfo] = None  # re-sent when a wait finds the node without one

    # --- lifecycle
    def start(self, wait_outputs: bool = True) -> "NodeRig":
        """Start the node, then the client; returns once inputs and outputs are matched over DDS."""
        return self.launch().connect(wait_outputs)

    def launch(self) -> "NodeRig":
        """Start the node process only (so that several nodes can load their models at once)."""
        self.process = NodeProcess(self.params, namespace=self.namespace).start()
        return self

    def connect(self, wait_outputs: bool = True) -> "NodeRig":
        """Wait for the launched node to listen, start the client and wait for DDS matching."""
        assert self.process is not None
        self.process.wait_for_output("listening on", STARTUP_S)
        if self.client is None:
            self._start_client()
        assert self.client is not None
        self.client.wait_for_subscribers(self.image_pub, timeout=STARTUP_S)
        self.client.wait_for_subscribers(self.info_pub, timeout=STARTUP_S)
        if wait_outputs:
            for topic in ("depth/image", "depth/camera_info", "points"):
                self.client.wait_for_publishers(f"{self.namespace}/{topic}", timeout=STARTUP_S)
        return self

    def _start_client(self) -> None:
        self.client = DdsClient(self._client_name)
        if self.transport == "compressed":
            self.image_pub = self.client.publisher(CompressedImage, f"{self.namespace}/image/compressed")
        else:
            self.image_pub = self.client.publisher(Image, f"{self.namespace}/image")
        self.info_pub = self.client.publisher(CameraInfo, f"{self.namespace}/camera_info")
        self.depth = self._record(Image, "depth/image")
        self.depth_info = self._record(CameraInfo, "depth/camera_info")
        self.points = self._record(PointCloud2, "points")
        self.client.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)

    def _record(self, msg_type: type, topic: str) -> Recorder:
        assert self.client is not None
        return self.client.collect(msg_type, f"{self.namespace}/{topic}", _OUTPUT_QOS, keep_messages=self._keep)

    def stop_node(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> int:
        """Stop the node with `sig` and return its exit code (the client stays)."""
        assert self.process is not None
        if self.process.process is not None and self.process.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def close(self) -> None:
        """Stop the node (SIGINT) and the client."""
        if self.process is not None:
            self.process.stop()
        if self.client is not None:
            self.client.close()
            self.client = None

    def __enter__(self) -> "NodeRig":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- node facts
    @property
    def pid(self) -> int:
        assert self.process is not None and self.process.process is not None
        return self.process.process.pid

    @property
    def log(self) -> str:
        """Everything the node printed so far (stdout + stderr)."""
        return self.process.output if self.process is not None else ""

    def rss_mb(self) -> float:
        """The node process's resident memory in MB."""
        return psutil.Process(self.pid).memory_info().rss / 1e6

    def assert_clean_log(self, allowed_errors: Sequence[str] = ()) -> None:
        """No Python traceback, no crash report and no `[ERROR]`/`[FATAL]` line in the node's output, except
        error lines matching one of the regexes `allowed_errors` (what the test provoked on purpose)."""
        log = self.log
        for marker in ("Traceback", "Segmentation fault", "core dumped", "terminate called", "Fatal Python error"):
            assert marker not in log, f"{marker!r} in the node's log:\n{log}"
        unexpected = [line for line in log.splitlines() if ("[ERROR]" in line or "[FATAL]" in line)
                      and not any(re.search(pattern, line) for pattern in allowed_errors)]
        assert not unexpected, "unexpected error lines in the node's log:\n" + "\n".join(unexpected)

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> str:
        """The first line of the node's log matching the regex `pattern`."""
        assert self.process is not None
        return self.process.wait_for_output(pattern, timeout)

    # --- diagnostics
    def _on_diagnostics(self, array_msg: DiagnosticArray) -> None:
        for status in array_msg.status:
            if status.name.startswith(f"{self.fqn}:"):
                level = status.level if isinstance(status.level, int) else int.from_bytes(status.level, "little")
                diag = Diag(stamp_seconds(array_msg.header.stamp), level, status.message,
                            {kv.key: kv.value for kv in status.values})
                with self._diag_lock:
                    self._diags.append(diag)

    @property
    def diags(self) -> list[Diag]:
        with self._diag_lock:
            return list(self._diags)

    def latest_diag(self) -> Optional[Diag]:
        with self._diag_lock:
            return self._diags[-1] if self._diags else None

    def wait_diag(self, predicate: Callable[[Diag], bool], what: str, after: float = 0.0,
                  timeout: float = DIAGNOSTICS_TIMEOUT_S, on_wait: Optional[Callable[[], None]] = None) -> Diag:
        """The first status published at or after wall time `after` for which `predicate` holds."""
        def found() -> Optional[Diag]:
            for diag in reversed(self.diags):
                if diag.stamp < after:
                    break
                if predicate(diag):
                    return diag
            if on_wait is not None:
                on_wait()
            return None

        return wait_until(found, timeout, f"diagnostics of {self.fqn}: {what}", poll_s=0.05)

    def wait_idle(self, after: float, min_frames_in: int = 0, resend: Optional[Callable[[], None]] = None,
                  timeout: float = OUTPUT_TIMEOUT_S) -> Diag:
        """A status from after `after` showing at least `min_frames_in` frames received and every one of
        them accounted for (nothing in flight); `resend` runs if the count stays short (transport loss)."""
        last_send = [time.monotonic()]

        def maybe_resend() -> None:
            latest = self.latest_diag()
            if resend is not None and latest is not None and latest.frames_in < min_frames_in \
                    and time.monotonic() - last_send[0] > RESEND_AFTER_S:
                last_send[0] = time.monotonic()
                resend()

        return self.wait_diag(lambda d: d.frames_in >= min_frames_in and d.backlog == 0,
                              f"idle with frames_in >= {min_frames_in}", after, timeout, maybe_resend)

    # --- inputs and outputs
    def publish(self, msg: Any) -> None:
        """Publish an image (Image or CompressedImage, as the node's transport) or a CameraInfo."""
        if isinstance(msg, CameraInfo):
            self._last_info = msg
        (self.info_pub if isinstance(msg, CameraInfo) else self.image_pub).publish(msg)

    def wait_outputs(self, sent: Any, cloud: bool = True, timeout: float = OUTPUT_TIMEOUT_S
                     ) -> tuple[Image, Optional[CameraInfo], Optional[PointCloud2]]:
        """depth/image (and depth/camera_info + points when `cloud`) with `sent`'s stamp; re-sends `sent`
        every few seconds until they arrive (its input is best effort), with the last CameraInfo first when the
        depth came without them (that CameraInfo was lost: a clean-clone CI run waited 90 s for a cloud)."""
        recorders = [self.depth] + ([self.depth_info, self.points] if cloud else [])
        last_send = [time.monotonic()]

        def arrived() -> bool:
            if all(r.has(sent.header.stamp) for r in recorders):
                return True
            if time.monotonic() - last_send[0] > RESEND_AFTER_S:
                last_send[0] = time.monotonic()
                if self.depth.has(sent.header.stamp):  # depth without the cloud: the node has no CameraInfo
                    if self._last_info is None:
                        return False
                    self.publish(self._last_info)
                    time.sleep(0.2)  # the CameraInfo first, on its own topic
                self.publish(sent)
            return False

        wait_until(arrived, timeout, f"{self.fqn}'s outputs for stamp {stamp_key(sent.header.stamp)}", poll_s=0.02)
        depth = self.depth.get(sent.header.stamp)
        return depth, self.depth_info.get(sent.header.stamp), self.points.get(sent.header.stamp)

    def outputs_for(self, stamp: Any) -> list[str]:
        """The output topics (relative to the namespace) that carried a message with this stamp."""
        return [r.topic[len(self.namespace) + 1:] for r in (self.depth, self.depth_info, self.points) if r.has(stamp)]


# ------------------------------------------------------------------------------------ statistics
@dataclass(frozen=True)
class Percentiles:
    """Latency percentiles in milliseconds over `n` samples."""

    n: int
    p50_ms: Optional[float]
    p99_ms: Optional[float]
    max_ms: Optional[float]

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Percentiles":
        if not seconds:
            return cls(0, None, None, None)
        values = np.asarray(seconds, dtype=np.float64) * 1e3
        return cls(len(values), float(np.percentile(values, 50)), float(np.percentile(values, 99)),
                   float(values.max()))

    def text(self) -> str:
        if not self.n:
            return "n/a"
        return f"{self.p50_ms:.0f} / {self.p99_ms:.0f} ms"


class RssSampler:
    """The node's RSS every `period_s` seconds on a thread, with the time of each sample."""

    def __init__(self, pid: int, period_s: float = 0.5) -> None:
        self._process = psutil.Process(pid)
        self._period_s = period_s
        self.samples: list[tuple[float, float]] = []  # (time.monotonic(), MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss_sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self._process.memory_info().rss / 1e6))
            except psutil.Error:
                return
            self._stop.wait(self._period_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def at(self, when: float) -> float:
        """The first sample taken at or after monotonic time `when` (the last one if none)."""
        for t, mb in self.samples:
            if t >= when:
                return mb
        return self.samples[-1][1]


# ------------------------------------------------------------------------------------- scenarios
@dataclass
class StreamResult:
    """What one overload / burst / soak run did, in the node's own counters and as the client saw it."""

    scenario: str
    params: dict[str, Any]
    image_size: str
    sent: int
    node_in: int  # frames the node's callback received (the rest were lost before it: best-effort QoS)
    published: int  # depth images that reached the client
    dropped: int  # frames the node replaced with a newer one before processing (newest wins)
    rejected: int
    max_backlog: int  # most frames ever received but not yet published/dropped/rejected
    frame_interval_p50_s: Optional[float]  # time between outputs while saturated: the model's pace
    frame_interval_max_s: Optional[float]  # the slowest such interval (CPU contention shows here)
    latency: Percentiles  # arrival of depth/image minus the image stamp
    latency_start: Percentiles  # the first tenth of the published frames
    latency_end: Percentiles  # the last tenth
    # Latency minus the time since the previous output (~ this frame's own processing): how long the frame
    # waited before the model took it, while the camera was still streaming. With newest-wins it is at most
    # one camera period (plus scheduling), however slow the model is at the moment; a queue would grow it.
    waited: Percentiles
    node_stamp_age_p50_ms: Optional[float]  # the node's own figure (publish time minus stamp, last 10 s)
    rss_start_mb: float
    rss_end_mb: float
    rss_max_mb: float
    last_sent_stamp: tuple[int, int]
    last_published_stamp: Optional[tuple[int, int]]
    stamps_increasing: bool
    duration_s: float
    inference_p50_s: Optional[float] = None  # the node's own figure for the model alone (last 10 s)
    inference_start_ms: Optional[float] = None  # the node's inference p50 in the first tenth of the run
    inference_end_ms: Optional[float] = None  # ... and in the last tenth (CPU contention shows here)
    rss_timeline_mb: list[float] = field(default_factory=list)  # at 0, 10, 25, 50, 75, 100 % of the run
    drain_s: Optional[float] = None  # last publish -> last output
    notes: list[str] = field(default_factory=list)
    sent_stamps: list[tuple[int, int]] = field(default_factory=list, repr=False)

    @property
    def frame_s(self) -> float:
        """Seconds the node needs per frame: the pace of its outputs while saturated, else the model's time."""
        return max(self.frame_interval_p50_s or 0.0, self.inference_p50_s or 0.0)

    @property
    def slowest_frame_s(self) -> float:
        """The longest the node took for one frame during the run (at least `frame_s`)."""
        return max(self.frame_interval_max_s or 0.0, self.frame_s)

    @property
    def lost_before_node(self) -> int:
        return self.sent - self.node_in

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_end_mb - self.rss_start_mb

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["sent_stamps"]
        data.update(lost_before_node=self.lost_before_node, rss_growth_mb=self.rss_growth_mb, frame_s=self.frame_s,
                    slowest_frame_s=self.slowest_frame_s)
        return data


class Streamer:
    """Publishes frames at a fixed rate (absolute schedule, no drift) on a thread until stopped or
    `count` frames went out; every frame gets the wall-clock time of its publishing as stamp."""

    def __init__(self, rig: NodeRig, camera: Camera, rate_hz: float, count: Optional[int] = None,
                 jpeg: bool = False, with_info: bool = False) -> None:
        self._rig, self._camera, self._rate_hz, self._count, self._jpeg = rig, camera, rate_hz, count, jpeg
        self._with_info = with_info  # a CameraInfo with every frame, as camera drivers do
        self.sent: list[tuple[int, int]] = []
        self.sent_at: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame_streamer", daemon=True)
        self.late_s = 0.0  # worst lag behind the schedule (the client itself starved of CPU)

    def _run(self) -> None:
        start = time.monotonic()
        i = 0
        while not self._stop.is_set() and (self._count is None or i < self._count):
            due = start + i / self._rate_hz
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            self.late_s = max(self.late_s, -delay)
            now = time.time()
            msg = self._camera.jpeg(now) if self._jpeg else self._camera.image(now)
            if self._with_info:
                self._rig.publish(self._camera.camera_info(now))
            self._rig.publish(msg)
            self.sent.append(stamp_key(msg.header.stamp))
            self.sent_at.append(time.monotonic())
            i += 1

    def start(self) -> "Streamer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """True until `count` frames went out or `stop` was called."""
        return self._thread.is_alive()


def _settle(rig: NodeRig, base: Diag, sent: list[tuple[int, int]], timeout: float = OUTPUT_TIMEOUT_S) -> Diag:
    """Once the publisher stopped: the first status with nothing in flight (the node drained what it
    received), after which every depth image the node counted for `sent` has reached the client."""
    final = rig.wait_diag(lambda d: d.backlog == 0 and d.frames_in > base.frames_in,
                          "all received frames accounted for", time.time() + 0.2, timeout)
    published = final.count("frames_out") - base.count("frames_out")
    keys = set(sent)
    wait_until(lambda: sum(a.stamp in keys for a in rig.depth.arrivals) >= published, timeout,
               f"{published} depth images at the client")
    return final


def _result(scenario: str, rig: NodeRig, camera: Camera, sent: list[tuple[int, int]], base: Diag, final: Diag,
            arrivals: list[Arrival], rss: RssSampler, t_first: float, t_end: float, started: float,
            last_publish: Optional[float] = None) -> StreamResult:
    """Figures of a run from the sent stamps, the depth arrivals for them and the node's counters."""
    sent_keys = set(sent)
    ours = [a for a in arrivals if a.stamp in sent_keys]
    ours.sort(key=lambda a: a.received)
    latencies = [a.latency_s for a in ours]
    tenth = max(1, len(ours) // 10)
    # only while the camera still streamed when the model took the next frame (after that, the newest is old)
    waited = [b.latency_s - (b.received - a.received) for a, b in zip(ours, ours[1:])
              if last_publish is None or a.received < last_publish]
    intervals = np.diff([a.received for a in ours])
    delta = counter_delta(base, final)
    diags = [d for d in rig.diags if d.stamp >= base.stamp and d.stamp <= final.stamp]
    ages = [float(d.values["stamp_age_p50_ms"]) for d in diags if d.values.get("stamp_age_p50_ms", "n/a") != "n/a"]
    inference = final.values.get("inference_p50_ms", "n/a")
    streaming = [float(d.values["inference_p50_ms"]) for d in diags
                 if d.values.get("inference_p50_ms", "n/a") != "n/a"
                 and (last_publish is None or d.stamp <= last_publish)]
    phase = max(1, len(streaming) // 10)
    run_samples = [(t, mb) for t, mb in rss.samples if started <= t <= t_end] or rss.samples
    timeline = [run_samples[min(len(run_samples) - 1, int(f * (len(run_samples) - 1)))][1]
                for f in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)]
    drain = None
    if last_publish is not None and ours:
        drain = max(0.0, ours[-1].received - last_publish)
    in_rss = [mb for t, mb in rss.samples if started <= t <= t_end] or [s[1] for s in rss.samples]
    return StreamResult(
        scenario=scenario,
        params={k: rig.params[k] for k in ("encoder", "input_size", "num_threads", "device") if k in rig.params},
        image_size=f"{camera.width}x{camera.height}",
        sent=len(sent),
        node_in=delta.get("frames_in", 0),
        published=len(ours),
        dropped=delta.get("frames_dropped", 0),
        rejected=delta.get("frames_rejected", 0),
        max_backlog=max((d.backlog for d in diags), default=0),
        frame_interval_p50_s=float(np.median(intervals)) if intervals.size else None,
        frame_interval_max_s=float(intervals.max()) if intervals.size else None,
        latency=Percentiles.of(latencies),
        latency_start=Percentiles.of(latencies[:tenth]),
        latency_end=Percentiles.of(latencies[-tenth:]),
        waited=Percentiles.of(waited),
        node_stamp_age_p50_ms=float(np.median(ages)) if ages else None,
        rss_start_mb=rss.at(t_first),
        rss_end_mb=in_rss[-1],
        rss_max_mb=max(in_rss),
        last_sent_stamp=sent[-1],
        last_published_stamp=ours[-1].stamp if ours else None,
        stamps_increasing=all(b.stamp > a.stamp for a, b in zip(ours, ours[1:])),
        duration_s=t_end - started,
        inference_p50_s=None if inference == "n/a" else float(inference) / 1e3,
        inference_start_ms=float(np.median(streaming[:phase])) if streaming else None,
        inference_end_ms=float(np.median(streaming[-phase:])) if streaming else None,
        rss_timeline_mb=[round(mb, 1) for mb in timeline],
        drain_s=drain,
        sent_stamps=list(sent),
    )


def _baseline(rig: NodeRig, camera: Camera) -> Diag:
    """One frame through the node (CameraInfo first), then an idle status to count from."""
    rig.publish(camera.camera_info(time.time()))
    sent = camera.jpeg(time.time()) if rig.transport == "compressed" else camera.image(time.time())
    rig.wait_outputs(sent)
    rig.depth.forget()
    return rig.wait_idle(time.time())


def run_stream(rig: NodeRig, camera: Camera, rate_hz: float, duration_s: float,
               scenario: str = "overload") -> StreamResult:
    """Publish `camera`'s frame at `rate_hz` for `duration_s` (CameraInfo at 1 Hz), then let the node drain."""
    base = _baseline(rig, camera)
    with RssSampler(rig.pid) as rss:
        started = time.monotonic()
        streamer = Streamer(rig, camera, rate_hz).start()
        stop_at = started + duration_s
        while time.monotonic() < stop_at:
            rig.publish(camera.camera_info(time.time()))
            time.sleep(min(1.0, max(0.0, stop_at - time.monotonic())))
        streamer.stop()
        last_publish = time.time()
        final = _settle(rig, base, streamer.sent)
        t_end = time.monotonic()
    # RSS "start": a fifth into the run, once the model has run a few frames (allocator warm-up)
    result = _result(scenario, rig, camera, streamer.sent, base, final, rig.depth.arrivals, rss,
                     started + duration_s / 5, t_end, started, last_publish)
    result.notes.append(f"rate {rate_hz:g} Hz for {duration_s:g} s; publisher lag max {streamer.late_s * 1e3:.0f} ms")
    rig.depth.forget()
    return result


def run_burst(rig: NodeRig, camera: Camera, count: int = 200) -> StreamResult:
    """Publish `count` frames back to back, as fast as the client can, then let the node drain."""
    base = _baseline(rig, camera)
    with RssSampler(rig.pid) as rss:
        started = time.monotonic()
        sent: list[tuple[int, int]] = []
        for _ in range(count):
            msg = camera.image(time.time())
            rig.publish(msg)
            sent.append(stamp_key(msg.header.stamp))
        last_publish = time.time()
        publish_s = time.monotonic() - started
        final = _settle(rig, base, sent)
        t_end = time.monotonic()
    result = _result("burst", rig, camera, sent, base, final, rig.depth.arrivals, rss, started, t_end, started,
                     last_publish)
    result.notes.append(f"{count} frames published in {publish_s:.2f} s")
    rig.depth.forget()
    return result


def run_soak(rig: NodeRig, camera: Camera, frames: int, rate_hz: float) -> StreamResult:
    """`frames` frames at `rate_hz` through the node with CameraInfo every 10th frame; RSS from after
    the first tenth (allocator warm-up) to the end."""
    base = _baseline(rig, camera)
    with RssSampler(rig.pid, period_s=1.0) as rss:
        started = time.monotonic()
        streamer = Streamer(rig, camera, rate_hz, count=frames).start()
        while streamer.running:
            rig.publish(camera.camera_info(time.time()))
            streamer.join(10.0 / rate_hz)
        last_publish = time.time()
        final = _settle(rig, base, streamer.sent)
        t_end = time.monotonic()
        warm = streamer.sent_at[len(streamer.sent_at) // 10] if streamer.sent_at else started
    result = _result("soak", rig, camera, streamer.sent, base, final, rig.depth.arrivals, rss, warm, t_end,
                     started, last_publish)
    result.notes.append(f"{frames} frames at {rate_hz:g} Hz; RSS right after start-up "
                        f"{rss.samples[0][1]:.0f} MB; publisher lag max {streamer.late_s * 1e3:.0f} ms")
    return result


@dataclass
class RestartResult:
    """A node SIGKILLed while a publisher streams, and a new one started in its place."""

    first_node_outputs: int
    killed_exit_code: int
    kill_to_listening_s: float
    kill_to_first_output_s: float
    second_node_outputs: int
    second_node_log_clean: bool
    second_node_exit_code: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_restart(namespace: str, camera: Camera, rate_hz: float = 5.0, outputs_after: int = 5,
                params: Optional[Mapping[str, Any]] = None) -> RestartResult:
    """Start a node, stream at `rate_hz` (image + CameraInfo), SIGKILL the node mid-stream, start a new
    one with the same name while the stream goes on, and count its outputs until `outputs_after` arrived."""
    rig = NodeRig(namespace, params)
    streamer: Optional[Streamer] = None
    try:
        rig.start()
        streamer = Streamer(rig, camera, rate_hz, with_info=True).start()
        wait_until(lambda: len(rig.depth.arrivals) >= 3, OUTPUT_TIMEOUT_S, "3 outputs from the first node")
        first_outputs = len(rig.depth.arrivals)
        killed_at = time.monotonic()
        killed_wall = time.time()
        code = rig.stop_node(signal.SIGKILL, 30.0)
        rig.assert_clean_log()
        rig.process = NodeProcess(rig.params, namespace=namespace).start()
        rig.process.wait_for_output("listening on", STARTUP_S)
        listening = time.monotonic() - killed_at

        def new_outputs() -> list[Arrival]:  # clouds: the new node got CameraInfo too
            return [a for a in rig.points.arrivals if a.stamp[0] + a.stamp[1] * 1e-9 > killed_wall]

        wait_until(new_outputs, OUTPUT_TIMEOUT_S, "an output from the restarted node")
        first_output = new_outputs()[0].received - killed_wall
        wait_until(lambda: len(new_outputs()) >= outputs_after, OUTPUT_TIMEOUT_S,
                   f"{outputs_after} outputs from the restarted node")
        streamer.stop()
        second_outputs = len(new_outputs())
        clean = True
        try:
            rig.assert_clean_log()
        except AssertionError:
            clean = False
        exit_code = rig.stop_node(signal.SIGINT, 60.0)
        return RestartResult(first_outputs, code, listening, first_output, second_outputs, clean, exit_code)
    finally:
        if streamer is not None:
            streamer.stop()
        rig.close()


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown CPU" where it says none)."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    return model


def environment_note() -> str:
    """The machine the figures come from (they depend on it): CPU model, cores, load, memory."""
    load = os.getloadavg()
    return (f"{cpu_model()}, {os.cpu_count()} cores, load average {load[0]:.1f} (1 min) / {load[2]:.1f} (15 min) "
            f"at the end, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM")

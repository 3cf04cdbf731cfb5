"""The depth node as a subprocess in its own namespace and a DDS client that feeds it and follows its outputs."""

from __future__ import annotations

import re
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

import psutil
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from camera_frame import stamp_seconds
from node_harness import DdsClient, NodeProcess, Recorder, stamp_key, wait_until
from rig_settings import BASE_PARAMS, DIAGNOSTICS_TIMEOUT_S, OUTPUT_TIMEOUT_S, RESEND_AFTER_S, STARTUP_S

_OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)


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

"""Run the real depth node and talk to it over DDS on localhost, for node, replay and robustness tests.

- `InProcessNode`: `DepthNode` in its own rclpy context with an executor thread, in this process.
- `NodeProcess`: `python -m dav2_ros.node.depth_node --ros-args ...` as a subprocess, its output captured.
- `DdsClient`: a test node in its own context that publishes inputs, records outputs and calls
  the node's parameter services.
- `Recorder` (made by `DdsClient.collect`): what arrives on one topic -- the messages, their arrival times and
  header stamps; the one recorder of the tests (node, replay and robustness).
- `wait_until(predicate, timeout, what)`: a deadline loop that fails the test when time runs out.

Nothing here mocks rclpy: messages cross a real DDS participant boundary. The caller sets
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID (test/conftest.py does).
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterType, SetParametersResult
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2

from project_paths import PROJECT_DIR

DEFAULT_TIMEOUT_S = 60.0

# Outputs are published reliable; a reliable reader with some history catches every one.
RELIABLE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, poll_s: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy (returned); AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll_s)


def every(period_s: float, action: Callable[[], None]) -> Callable[[], None]:
    """`action`, run at most once per `period_s` however often the result is called (an `on_wait` that
    re-publishes a best-effort input now and then rather than at every poll)."""
    last = [time.monotonic()]

    def maybe() -> None:
        if time.monotonic() - last[0] > period_s:
            last[0] = time.monotonic()
            action()
    return maybe


def ros_args(params: Mapping[str, Any] = (), remaps: Mapping[str, str] = (), namespace: str = "",
             log_level: Optional[str] = None) -> list[str]:
    """`--ros-args -p name:=value ... -r from:=to ...` for a node's command line."""
    args = ["--ros-args"]
    for name, value in dict(params).items():
        args += ["-p", f"{name}:={_yaml_value(value)}"]
    for source, target in dict(remaps).items():
        args += ["-r", f"{source}:={target}"]
    if namespace:
        args += ["-r", f"__ns:={namespace}"]
    if log_level:
        args += ["--log-level", log_level]
    return args


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # quoted where YAML would read another type: numbers, and the YAML 1.1 booleans rcl knows (off, on, ...)
        yaml_typed = re.fullmatch(r"[-+.\d eE]+|(?i:true|false|on|off|yes|no)", value)
        return f"'{value}'" if value == "" or yaml_typed else value
    return repr(value)


class InProcessNode:
    """The real `DepthNode` (or `node_type`, e.g. the managed node) in a private rclpy context, spun by a thread;
    use as a context manager."""

    def __init__(self, params: Mapping[str, Any], remaps: Mapping[str, str] = (), namespace: str = "",
                 node_type: Optional[type] = None) -> None:
        self.node_type = node_type
        self.params = dict(params)
        self.remaps = dict(remaps)
        self.namespace = namespace
        self.context: Optional[Context] = None
        self.node: Any = None
        self._executor: Optional[SingleThreadedExecutor] = None
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "InProcessNode":
        from dav2_ros.node.depth_node import DepthNode

        self.context = Context()
        rclpy.init(context=self.context)
        try:
            self.node = (self.node_type or DepthNode)(
                context=self.context,
                namespace=self.namespace or None,
                cli_args=ros_args(remaps=self.remaps),
                parameter_overrides=[Parameter(name, value=value) for name, value in self.params.items()],
            )
        except BaseException:
            rclpy.try_shutdown(context=self.context)
            raise
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="depth_node_executor", daemon=True)
        self._thread.start()
        return self

    def _spin(self) -> None:
        assert self._executor is not None
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 -- context shut down under the executor at teardown
            pass

    @property
    def fqn(self) -> str:
        """The node's fully qualified name, e.g. `/depth_node`."""
        return self.node.get_fully_qualified_name()

    def __exit__(self, *exc: Any) -> None:
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=5.0)
        if self.node is not None:
            self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            assert not self._thread.is_alive(), "the executor thread of the in-process node did not stop"


class NodeProcess:
    """`python -m dav2_ros.node.depth_node` (or another node `module`) in a subprocess, with its stdout+stderr
    collected line by line."""

    def __init__(self, params: Mapping[str, Any] = (), remaps: Mapping[str, str] = (), namespace: str = "",
                 env: Optional[Mapping[str, str]] = None, extra_args: Sequence[str] = (),
                 module: str = "dav2_ros.node.depth_node", executable: Optional[str] = None) -> None:
        # `executable`: a console script of the venv (`depth_node`, as `ros2 run` starts it) instead of the module
        script = [str(pathlib.Path(sys.executable).parent / executable)] if executable else None
        command = script or [sys.executable, "-m", module]
        self.cmd = [*command, *ros_args(params, remaps, namespace), *extra_args]
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_DIR), self.env.get("PYTHONPATH")]))
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
        self.env.update(env or {})
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.process: Optional[subprocess.Popen] = None
        self._reader: Optional[threading.Thread] = None

    def start(self) -> "NodeProcess":
        """Start the process; returns self."""
        self.process = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=self.env, cwd=str(PROJECT_DIR))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self._lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        """Everything the process printed so far."""
        with self._lock:
            return "\n".join(self._lines)

    def wait_for_output(self, pattern: str, timeout: float = DEFAULT_TIMEOUT_S) -> str:
        """The first output line matching the regex `pattern`; fails if the process exits or time runs out."""
        regex = re.compile(pattern)

        def found() -> Optional[str]:
            with self._lock:
                for line in self._lines:
                    if regex.search(line):
                        return line
            if self.process is not None and self.process.poll() is not None:
                self._reader.join(timeout=2.0)  # type: ignore[union-attr]
                raise AssertionError(f"node exited with {self.process.returncode} before printing "
                                     f"/{pattern}/; output:\n{self.output}")
            return None

        try:
            return wait_until(found, timeout, f"/{pattern}/ in the node's output")
        except AssertionError as error:
            raise AssertionError(f"{error}\noutput so far:\n{self.output}") from None

    def send_signal(self, sig: int = signal.SIGINT) -> None:
        """Send `sig` (Ctrl-C by default)."""
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = DEFAULT_TIMEOUT_S) -> int:
        """The exit code; fails (and kills the process) if it does not exit within `timeout`."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"node did not exit within {timeout:.0f} s; output:\n{self.output}") from None
        if self._reader is not None:
            self._reader.join(timeout=5.0)
        return code

    def stop(self) -> None:
        """Make sure the process is gone (used in teardown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "NodeProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def stamp_key(stamp: Any) -> tuple[int, int]:
    """A header stamp as an exact, hashable key."""
    return (int(stamp.sec), int(stamp.nanosec))


@dataclass(frozen=True)
class Arrival:
    """When one message reached the client, and its header stamp."""

    received: float  # time.time()
    received_monotonic: float  # time.monotonic()
    stamp: Optional[tuple[int, int]]  # the header's stamp_key; None for a message without a header

    @property
    def stamp_ns(self) -> int:
        """The header stamp in nanoseconds."""
        assert self.stamp is not None
        return self.stamp[0] * 1_000_000_000 + self.stamp[1]

    @property
    def latency_s(self) -> float:
        """Arrival time minus the header stamp (where stamps are the wall-clock times of publishing)."""
        assert self.stamp is not None
        return self.received - (self.stamp[0] + self.stamp[1] * 1e-9)


class Recorder:
    """What arrives on one topic through a real subscription of `node` (`DdsClient.collect` makes one): every
    arrival with its times and header stamp, and the messages themselves unless `keep_messages` is false (the
    soak publishes thousands of depth images). Thread-safe, with deadline waits."""

    def __init__(self, node: Node, msg_type: type, topic: str, qos: QoSProfile = RELIABLE_QOS,
                 keep_messages: bool = True) -> None:
        self.topic = topic
        self.keep_messages = keep_messages
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []
        self._kept: list[tuple[Arrival, Any]] = []
        node.create_subscription(msg_type, topic, self._receive, qos)

    def _receive(self, msg: Any) -> None:
        header = getattr(msg, "header", None)
        arrival = Arrival(time.time(), time.monotonic(), None if header is None else stamp_key(header.stamp))
        with self._lock:
            self._arrivals.append(arrival)
            if self.keep_messages:
                self._kept.append((arrival, msg))

    @property
    def arrivals(self) -> list[Arrival]:
        """Every arrival so far, in arrival order (`forget` keeps them)."""
        with self._lock:
            return list(self._arrivals)

    def received(self) -> list[tuple[Arrival, Any]]:
        """The kept messages with their arrivals, in arrival order."""
        with self._lock:
            return list(self._kept)

    @property
    def messages(self) -> list[Any]:
        """A copy of the kept messages, in arrival order."""
        return [msg for _, msg in self.received()]

    def forget(self) -> None:
        """Drop the messages received so far (not their arrivals)."""
        with self._lock:
            self._kept.clear()

    def has(self, stamp: Any) -> bool:
        """Whether a message with this header stamp arrived."""
        key = stamp_key(stamp)
        with self._lock:
            return any(a.stamp == key for a in self._arrivals)

    def get(self, stamp: Any) -> Optional[Any]:
        """The last kept message with this header stamp, if any."""
        key = stamp_key(stamp)
        return next((msg for arrival, msg in reversed(self.received()) if arrival.stamp == key), None)

    def by_stamp(self) -> dict[int, Arrival]:
        """The arrivals keyed by header stamp in ns; the first one of a stamp wins."""
        found: dict[int, Arrival] = {}
        for arrival in self.arrivals:
            found.setdefault(arrival.stamp_ns, arrival)
        return found

    def wait_for(self, match: Callable[[Any], bool] = lambda _: True, timeout: float = DEFAULT_TIMEOUT_S,
                 on_wait: Optional[Callable[[], None]] = None) -> Any:
        """The first message for which `match` is true; `on_wait` runs each poll (e.g. to re-publish)."""
        def found() -> Any:
            for msg in self.messages:
                if match(msg):
                    return msg
            if on_wait is not None:
                on_wait()
            return None

        return wait_until(found, timeout, f"a matching message on {self.topic}", poll_s=0.05)


class DdsClient:
    """A test-side node in its own context (a separate DDS participant), spun by a thread."""

    def __init__(self, name: str = "dav2_test_client") -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{name}_executor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 -- context shut down under the executor at teardown
            pass

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile = RELIABLE_QOS) -> Any:
        """A publisher on `topic`."""
        return self.node.create_publisher(msg_type, topic, qos)

    def collect(self, msg_type: type, topic: str, qos: QoSProfile = RELIABLE_QOS,
                keep_messages: bool = True) -> Recorder:
        """Start recording what arrives on `topic`."""
        return Recorder(self.node, msg_type, topic, qos, keep_messages)

    def wait_for_subscribers(self, publisher: Any, count: int = 1, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Until `publisher` has matched `count` subscriptions (discovery done)."""
        wait_until(lambda: publisher.get_subscription_count() >= count, timeout,
                   f"{count} subscriber(s) on {publisher.topic_name}")

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Until `topic` has `count` publishers."""
        wait_until(lambda: self.node.count_publishers(topic) >= count, timeout, f"{count} publisher(s) on {topic}")

    def set_parameters(self, node_fqn: str, values: Mapping[str, Any],
                       timeout: float = DEFAULT_TIMEOUT_S) -> list[SetParametersResult]:
        """Set parameters through the node's real `set_parameters` service; one result per parameter."""
        client = self.node.create_client(SetParameters, f"{node_fqn}/set_parameters")
        try:
            wait_until(lambda: client.wait_for_service(timeout_sec=0.1), timeout, f"{node_fqn}/set_parameters")
            request = SetParameters.Request(
                parameters=[Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
            future = client.call_async(request)
            wait_until(future.done, timeout, f"the reply of {node_fqn}/set_parameters")
            return list(future.result().results)
        finally:
            self.node.destroy_client(client)

    def get_parameters(self, node_fqn: str, names: Iterable[str], timeout: float = DEFAULT_TIMEOUT_S) -> dict:
        """Current values through the node's real `get_parameters` service."""
        names = list(names)
        client = self.node.create_client(GetParameters, f"{node_fqn}/get_parameters")
        try:
            wait_until(lambda: client.wait_for_service(timeout_sec=0.1), timeout, f"{node_fqn}/get_parameters")
            future = client.call_async(GetParameters.Request(names=names))
            wait_until(future.done, timeout, f"the reply of {node_fqn}/get_parameters")
            return {name: _parameter_value(value) for name, value in zip(names, future.result().values)}
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        """Stop the executor and shut the context down."""
        self._executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=10.0)

    def __enter__(self) -> "DdsClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _parameter_value(value: Any) -> Any:
    return {
        ParameterType.PARAMETER_BOOL: lambda v: v.bool_value,
        ParameterType.PARAMETER_INTEGER: lambda v: v.integer_value,
        ParameterType.PARAMETER_DOUBLE: lambda v: v.double_value,
        ParameterType.PARAMETER_STRING: lambda v: v.string_value,
    }.get(value.type, lambda v: None)(value)


# ------------------------------------------------------------------- decoding outputs independently
def image_array(msg: Image) -> np.ndarray:
    """A 32FC1 or bgr8 Image as a numpy array, read with the row step (independent of the package)."""
    channels, dtype = {"32FC1": (1, np.dtype("<f4") if not msg.is_bigendian else np.dtype(">f4")),
                       "bgr8": (3, np.dtype(np.uint8))}[msg.encoding]
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)
    row_bytes = msg.width * channels * dtype.itemsize
    values = np.frombuffer(raw[:, :row_bytes].tobytes(), dtype=dtype).reshape(msg.height, msg.width, channels)
    return values[..., 0] if channels == 1 else values


def cloud_fields(msg: PointCloud2) -> dict[str, np.ndarray]:
    """Every FLOAT32 field of a PointCloud2 as an (height, width) array, read from its PointFields."""
    float32 = 7
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.row_step)
    fields = {}
    for field in msg.fields:
        assert field.datatype == float32 and field.count == 1, f"unexpected field {field}"
        dtype = np.dtype(">f4" if msg.is_bigendian else "<f4")
        columns = raw[:, : msg.width * msg.point_step].reshape(msg.height, msg.width, msg.point_step)
        fields[field.name] = np.frombuffer(columns[..., field.offset:field.offset + 4].tobytes(),
                                           dtype=dtype).reshape(msg.height, msg.width)
    return fields


def same_header(a: Any, b: Any) -> bool:
    """Same stamp and frame_id."""
    return (a.header.stamp.sec, a.header.stamp.nanosec, a.header.frame_id) == \
        (b.header.stamp.sec, b.header.stamp.nanosec, b.header.frame_id)

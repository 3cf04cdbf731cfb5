#!/usr/bin/env python3
"""The node's message path over DDS: the real `depth_node` as its own process, fed the bundled 1280x720 robot-camera
JPEG (CompressedImage + its CameraInfo) by this process, a second rclpy participant, on localhost.

What it measures, per input size (70: the message path dominates; 518: the network does) and per project tree:

* lock-step latency: send one frame, wait until every expected output with that frame's header stamp has arrived,
  then send the next; median and p90 over `--frames` frames after `--warmup` frames, in three configurations:
  (a) depth + colored cloud (`cloud_rgb: true`; this process subscribes to depth/image, depth/camera_info, points),
  (b) no cloud (`publish_cloud: false`; depth/image + depth/camera_info),
  (c) depth only (same parameters as (a), but only depth/image has a subscriber: does the node build what nobody
  listens to?). Derived: the cloud's extra cost (a) - (b), and the depth-only message path = (c) minus the node's
  own `inference_p50_ms` from /diagnostics (the forward pass only: preprocessing, upsampling, decode, message build
  and DDS stay in the figure);
* sustained throughput in configuration (a): `--rate` Hz for `--sustain-s` seconds; complete frames out per second,
  frames published but never received, and the node's own counters (frames_in / frames_out / frames_dropped
  deltas from /diagnostics);
* per stage: every `*_ms` value the node reports in /diagnostics, as it reports it (its window is 10 s).

Outputs are received as serialized bytes (the header stamp is read from the CDR), so this process does not pay for
deserializing 15 MB clouds. The node runs on random weights (vits), `input_transport: compressed` and
`qos.input_reliability: reliable`, in a namespace of its own; it is stopped with SIGINT.

`--project DIR` (repeatable) runs the node from another checkout (PYTHONPATH=DIR, cwd=DIR), e.g. a "before" tree made
with `git worktree add /tmp/dav2_before <commit>`. With several projects, one node per project runs at a time per
configuration and the lock-step frames alternate between them (the order rotating every frame), so load changes on
a shared machine hit every tree alike: read the ratio column (column / first column) of one run.

    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=158 \\
        PYTHONPATH=. .venv/bin/python benchmarks/bench_message_path.py --input-sizes 70 --frames 20
    ... --project /tmp/dav2_before --project . --input-sizes 70 --frames 15 --sustain-s 8

`--large-data` runs the node AND this process's participant with config/fastdds_large_data.xml
(FASTDDS_DEFAULT_PROFILES_FILE + ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT, set before rclpy.init;
docs/large_data.md): shared memory only, samples sent whole; `--dds-profile PATH` for another profile. Fast DDS
loads a profile once per process, so with and without are two runs (JSON: bench_message_path_large_data.json).

`--device cuda` passes device:=cuda to the node (for a GPU machine; not tried on one yet). Prints markdown tables and
writes JSON to benchmarks/results/bench_message_path.json (git-ignored; `--json` to change). On 2 cores one project
takes about 35 s at input size 70 (15 frames, 8 s sustained; mostly node start-ups) and about 2 min more at 518
(about 1 s a frame); the run time grows with the number of projects.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
BAG = pathlib.Path("data") / "bags" / "fiducial_board_611"  # one 1280x720 JPEG + CameraInfo (shared/data/README.md)
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
OUTPUT_TYPES = {"depth/image": Image, "depth/camera_info": CameraInfo, "points": PointCloud2}
START_TIMEOUT_S = 300.0
DIAGNOSTICS_WAIT_S = 3.0  # the node publishes /diagnostics every second
EXPECTED_WARNINGS = ("RANDOM WEIGHTS", "non-zero distortion")  # random weights; the bag's CameraInfo has D != 0


@dataclass(frozen=True)
class Config:
    key: str
    title: str
    params: dict
    outputs: tuple[str, ...]  # the topics this process subscribes to and waits for


CONFIGS = (
    Config("a", "depth + colored cloud", {"publish_cloud": True, "cloud_rgb": True},
           ("depth/image", "depth/camera_info", "points")),
    Config("b", "no cloud", {"publish_cloud": False}, ("depth/image", "depth/camera_info")),
    Config("c", "depth only (cloud on, unsubscribed)", {"publish_cloud": True, "cloud_rgb": True}, ("depth/image",)),
)


# ----------------------------------------------------------------------------------------------- inputs, machine
def find_bag(projects: list[pathlib.Path]) -> pathlib.Path:
    """The bundled bag: a project's test/data, else the shared data folder beside the checkout."""
    shared = [pathlib.Path(os.environ["DAV2_SHARED_DIR"])] if os.environ.get("DAV2_SHARED_DIR") else []
    candidates = [p / "test" / BAG for p in (ROOT, *projects)]
    candidates += [s / BAG for s in (*shared, ROOT.parent / "shared", pathlib.Path("/work/shared"))]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise SystemExit(f"bag {BAG} not found in: {', '.join(map(str, candidates))}")


def read_frame(bag: pathlib.Path) -> tuple[CompressedImage, CameraInfo]:
    """The bag's CompressedImage and CameraInfo as rclpy messages (from the recorded CDR bytes)."""
    from rosbags.highlevel import AnyReader

    image = info = None
    with AnyReader([bag]) as reader:
        for connection, _, raw in reader.messages():
            if connection.msgtype == "sensor_msgs/msg/CompressedImage" and image is None:
                image = deserialize_message(bytes(raw), CompressedImage)
            elif connection.msgtype == "sensor_msgs/msg/CameraInfo" and info is None:
                info = deserialize_message(bytes(raw), CameraInfo)
    if image is None or info is None:
        raise SystemExit(f"{bag}: no CompressedImage + CameraInfo")
    return image, info


def cpu_description() -> dict:
    """CPU model name and whether it has avx512_bf16, from lscpu (or /proc/cpuinfo)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        name, flags = fields.get("Model name", "unknown").strip(), fields.get("Flags", "").split()
    except (OSError, subprocess.CalledProcessError):
        text = pathlib.Path("/proc/cpuinfo").read_text()
        name = re.search(r"model name\s*:\s*(.*)", text).group(1) if "model name" in text else "unknown"
        flags = (re.search(r"flags\s*:\s*(.*)", text) or re.search("()", "")).group(1).split()
    return {"model": name, "avx512_bf16": "avx512_bf16" in flags, "cores": os.cpu_count()}


def describe_project(project: pathlib.Path) -> str:
    """`<folder>@<commit>[-dirty]` for the column header."""
    result = subprocess.run(["git", "-C", str(project), "describe", "--always", "--dirty"], capture_output=True,
                            text=True)
    commit = result.stdout.strip() if result.returncode == 0 else "no-git"
    return f"{project.name}@{commit}"


def stamp_of(raw: bytes) -> tuple[int, int]:
    """(sec, nanosec) of a serialized message that starts with a std_msgs/Header (CDR: 4 encapsulation bytes, the
    second one odd for little endian)."""
    sec, nanosec = struct.unpack("<iI" if raw[1] & 1 else ">iI", raw[4:12])
    return sec, nanosec


def new_stamp() -> tuple[int, int]:
    """A fresh wall-clock stamp (unique per frame)."""
    now = time.time_ns()
    return now // 1_000_000_000, now % 1_000_000_000


# ----------------------------------------------------------------------------------------------- the node process
class NodeProcess:
    """`python -m dav2_ros.node.depth_node` from `project`, in `namespace`, its output collected line by line."""

    def __init__(self, project: pathlib.Path, namespace: str, params: dict) -> None:
        self.project, self.namespace = project, namespace
        args = []
        for name, value in params.items():
            args += ["-p", f"{name}:={str(value).lower() if isinstance(value, bool) else value}"]
        self.cmd = [sys.executable, "-m", "dav2_ros.node.depth_node", "--ros-args", *args, "-r", f"__ns:={namespace}"]
        self.lines: list[str] = []
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "NodeProcess":
        env = dict(os.environ, PYTHONPATH=str(self.project), PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
        self.process = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=env, cwd=str(self.project))
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_ready(self, timeout: float) -> float:
        """Seconds until the node said "model ready"; RuntimeError if it exits or time runs out."""
        assert self.process is not None
        start = time.monotonic()
        while not any("model ready" in line for line in list(self.lines)):
            if self.process.poll() is not None or time.monotonic() - start > timeout:
                tail = "\n".join(self.lines[-30:])
                raise RuntimeError(f"node in {self.project} not ready (exit code {self.process.poll()}):\n{tail}")
            time.sleep(0.1)
        return time.monotonic() - start

    def stop(self) -> Optional[int]:
        """SIGINT, then wait (kill after 30 s); the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def warnings(self) -> list[str]:
        """The lines that say something went wrong, less the warnings every run of this benchmark gets."""
        return [line for line in self.lines if ("[WARN]" in line or "[ERROR]" in line or "Traceback" in line)
                and not any(expected in line for expected in EXPECTED_WARNINGS)]


# ----------------------------------------------------------------------------------------------- this process
class Endpoint:
    """The topics of one node (its namespace): input publishers, raw output subscriptions, its diagnostics."""

    def __init__(self, node: Node, namespace: str, outputs: tuple[str, ...], frame: tuple[CompressedImage, CameraInfo]):
        self.node, self.namespace, self.outputs = node, namespace, outputs
        self.image, self.info = frame
        self.image_pub = node.create_publisher(CompressedImage, f"{namespace}/image/compressed", RELIABLE)
        self.info_pub = node.create_publisher(CameraInfo, f"{namespace}/camera_info", RELIABLE)
        self.cond = threading.Condition()
        self.arrivals: dict[tuple[int, int], dict[str, float]] = {}  # stamp -> topic -> receive time
        self.sizes: dict[str, int] = {}
        self.subs = [node.create_subscription(OUTPUT_TYPES[topic], f"{namespace}/{topic}",
                                              lambda raw, t=topic: self._arrived(t, raw), RELIABLE, raw=True)
                     for topic in outputs]
        self.diagnostics: list[tuple[float, dict]] = []  # (receive time, key -> value), filled by the Client

    def _arrived(self, topic: str, raw: bytes) -> None:
        now = time.perf_counter()
        with self.cond:
            self.arrivals.setdefault(stamp_of(raw), {})[topic] = now
            self.sizes[topic] = len(raw)
            self.cond.notify_all()

    def connected(self) -> bool:
        return (self.image_pub.get_subscription_count() > 0 and self.info_pub.get_subscription_count() > 0
                and all(sub.get_publisher_count() > 0 for sub in self.subs))

    def send(self, stamp: tuple[int, int]) -> float:
        """Publish the CameraInfo, then the image, both with `stamp`; the send time."""
        self.info.header.stamp.sec, self.info.header.stamp.nanosec = stamp
        self.image.header.stamp.sec, self.image.header.stamp.nanosec = stamp
        self.info_pub.publish(self.info)
        start = time.perf_counter()
        self.image_pub.publish(self.image)
        return start

    def complete_at(self, stamp: tuple[int, int]) -> Optional[float]:
        """When the last expected output of `stamp` arrived, or None while one is missing."""
        got = self.arrivals.get(stamp, {})
        return max(got.values()) if len(got) == len(self.outputs) else None

    def wait_complete(self, stamp: tuple[int, int], timeout: float) -> Optional[float]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while (done := self.complete_at(stamp)) is None and time.monotonic() < deadline:
                self.cond.wait(timeout=0.2)
        return done

    def fresh_diagnostics(self, after: float) -> dict:
        """The first diagnostics status received after perf_counter time `after` (waits up to a few seconds; the
        latest one, or {}, when none comes)."""
        deadline = time.monotonic() + DIAGNOSTICS_WAIT_S
        while time.monotonic() < deadline:
            fresh = [values for received, values in list(self.diagnostics) if received > after]
            if fresh:
                return fresh[0]
            time.sleep(0.05)
        return self.diagnostics[-1][1] if self.diagnostics else {}

    def close(self) -> None:
        for sub in self.subs:
            self.node.destroy_subscription(sub)
        self.node.destroy_publisher(self.image_pub)
        self.node.destroy_publisher(self.info_pub)


class Client:
    """This process's rclpy participant, spun by a thread; one /diagnostics subscription for every endpoint."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(f"bench_message_path_{os.getpid()}", context=self.context)
        self.endpoints: list[Endpoint] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, RELIABLE)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 -- context shut down under the executor at the end
            pass

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        now = time.perf_counter()
        for endpoint in list(self.endpoints):
            for status in msg.status:
                if status.name.startswith(f"{endpoint.namespace}/"):
                    endpoint.diagnostics.append((now, {kv.key: kv.value for kv in status.values}))

    def endpoint(self, namespace: str, outputs: tuple[str, ...], frame: tuple[CompressedImage, CameraInfo]
                 ) -> Endpoint:
        endpoint = Endpoint(self.node, namespace, outputs, frame)
        self.endpoints.append(endpoint)
        return endpoint

    def drop(self, endpoint: Endpoint) -> None:
        self.endpoints.remove(endpoint)
        endpoint.close()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=10.0)


# ----------------------------------------------------------------------------------------------- measurements
def summary_ms(samples_s: list[float]) -> dict:
    values = np.array(samples_s) * 1e3
    if not values.size:
        return {"median_ms": None, "p90_ms": None, "samples_ms": []}
    return {"median_ms": float(np.median(values)), "p90_ms": float(np.percentile(values, 90)),
            "samples_ms": [round(v, 2) for v in values.tolist()]}


def lock_step(endpoints: list[Endpoint], frames: int, warmup: int, timeout: float) -> list[dict]:
    """One frame at a time to each endpoint in turn (the order rotating every frame); per endpoint the latency
    summary and the stamps that timed out."""
    samples: list[list[float]] = [[] for _ in endpoints]
    missing: list[list[str]] = [[] for _ in endpoints]
    for i in range(warmup + frames):
        order = list(range(len(endpoints)))
        order = order[i % len(order):] + order[:i % len(order)]
        for index in order:
            endpoint = endpoints[index]
            stamp = new_stamp()
            sent = endpoint.send(stamp)
            done = endpoint.wait_complete(stamp, timeout)
            if done is None:
                got = sorted(endpoint.arrivals.get(stamp, {}))
                missing[index].append(f"frame {i}: got {got or 'nothing'}")
                print(f"  {endpoint.namespace}: frame {i} incomplete after {timeout:.0f} s (got {got})", flush=True)
            elif i >= warmup:
                samples[index].append(done - sent)
    return [dict(summary_ms(s), incomplete=m) for s, m in zip(samples, missing)]


def sustained(endpoint: Endpoint, rate_hz: float, seconds: float) -> dict:
    """`rate_hz` frames for `seconds`, then up to 10 s for stragglers; what came back, and the node's counters."""
    before = endpoint.fresh_diagnostics(time.perf_counter())
    sent: dict[tuple[int, int], float] = {}
    start = time.perf_counter()
    for k in range(max(1, round(rate_hz * seconds))):
        delay = start + k / rate_hz - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        stamp = new_stamp()
        sent[stamp] = endpoint.send(stamp)
    published_s = time.perf_counter() - start
    last_change, seen = time.monotonic(), -1
    while time.monotonic() - last_change < 3.0 and time.monotonic() - start < seconds + 10.0:
        with endpoint.cond:
            done = sum(1 for stamp in sent if endpoint.complete_at(stamp) is not None)
        if done == len(sent):
            break
        if done != seen:
            seen, last_change = done, time.monotonic()
        time.sleep(0.1)
    with endpoint.cond:
        complete = {stamp: endpoint.complete_at(stamp) for stamp in sent}
        per_topic = {topic: sum(1 for stamp in sent if topic in endpoint.arrivals.get(stamp, {}))
                     for topic in endpoint.outputs}
    received = {stamp: done for stamp, done in complete.items() if done is not None}
    after = endpoint.fresh_diagnostics(time.perf_counter())

    def delta(key: str) -> Optional[int]:
        try:
            return int(after[key]) - int(before.get(key, 0))
        except (KeyError, ValueError):
            return None

    latencies = [received[stamp] - sent[stamp] for stamp in received]
    return {"rate_hz": rate_hz, "published": len(sent), "published_s": published_s, "received_complete": len(received),
            "received_per_topic": per_topic, "not_received": len(sent) - len(received),
            "frames_out_per_s": len(received) / published_s,
            "latency": {k: v for k, v in summary_ms(latencies).items() if k != "samples_ms"},
            "node_frames_in": delta("frames_in"), "node_frames_out": delta("frames_out"),
            "node_frames_dropped": delta("frames_dropped"), "node_frames_rejected": delta("frames_rejected"),
            "diagnostics_after": after}


def run_config(client: Client, projects: list[pathlib.Path], config: Config, input_size: int, args: argparse.Namespace,
               frame: tuple[CompressedImage, CameraInfo], run_id: list[int]) -> list[dict]:
    """One node per project with this configuration, started together; lock-step frames alternating between them;
    then (configuration a) the sustained run of each in turn. One result per project."""
    params = {"allow_random_weights": True, "encoder": args.encoder, "device": args.device,
              "input_size": input_size, "input_transport": "compressed", "qos.input_reliability": "reliable",
              "warmup_width": frame[1].width, "warmup_height": frame[1].height, **config.params}
    nodes: list[NodeProcess] = []
    endpoints: list[Endpoint] = []
    results: list[dict] = []
    try:
        for project in projects:
            run_id[0] += 1
            namespace = f"/bench_mp_{os.getpid()}_{run_id[0]}"
            nodes.append(NodeProcess(project, namespace, params).start())
        ready_s = [node.wait_ready(START_TIMEOUT_S) for node in nodes]
        endpoints = [client.endpoint(node.namespace, config.outputs, frame) for node in nodes]
        deadline = time.monotonic() + 30.0
        while not all(e.connected() for e in endpoints):
            if time.monotonic() > deadline:
                raise RuntimeError("topics not matched within 30 s")
            time.sleep(0.05)
        lock = lock_step(endpoints, args.frames, args.warmup, args.frame_timeout)
        after_lock = time.perf_counter()
        for column, (node, endpoint, latency, ready) in enumerate(zip(nodes, endpoints, lock, ready_s)):
            results.append({"config": config.key, "input_size": input_size, "column": column,
                            "project": str(node.project),
                            "namespace": node.namespace, "ready_s": ready, "lock_step": latency,
                            "diagnostics": endpoint.fresh_diagnostics(after_lock),
                            "message_bytes": dict(endpoint.sizes)})
        if config.key == "a" and args.sustain_s > 0:
            for endpoint, result in zip(endpoints, results):
                result["sustained"] = sustained(endpoint, args.rate, args.sustain_s)
        return results
    finally:
        for endpoint in endpoints:
            client.drop(endpoint)
        codes = [node.stop() for node in nodes]
        for node, code in zip(nodes, codes):
            if code not in (0, None):
                print(f"  node {node.namespace} ({node.project}) exited with {code}", flush=True)
        for result, node, code in zip(results, nodes, codes):
            result["exit_code"] = code
            result["node_warnings"] = node.warnings()[-20:]


# ----------------------------------------------------------------------------------------------- report
def number(value: Any) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def cell(value: Optional[float], p90: Optional[float] = None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.{digits}f}"
    return f"{text} / {p90:.{digits}f}" if p90 is not None else text


def ratio_cells(values: list[Optional[float]]) -> list[str]:
    first = values[0]
    return [f"{v / first:.2f}x" if v is not None and first else "n/a" for v in values[1:]]


def print_tables(results: list[dict], labels: list[str], projects: list[pathlib.Path], input_size: int,
                 args: argparse.Namespace) -> dict:
    """The markdown tables of one input size; the derived figures (returned for the JSON)."""
    by = {(r["config"], r["column"]): r for r in results if r["input_size"] == input_size}
    keys = range(len(projects))
    head = "| " + " | ".join(labels) + " |" + "".join(f" {label} / {labels[0]} |" for label in labels[1:])
    rule = "|---" * (1 + len(labels) + len(labels) - 1) + "|"
    print(f"\n### input_size {input_size}: lock-step latency over DDS, ms (median / p90 of {args.frames} frames)\n")
    print("| measure " + head + "\n" + rule)
    derived: dict[str, dict] = {}

    def row(title: str, values: list[Optional[float]], p90s: Optional[list[Optional[float]]] = None) -> None:
        cells = [cell(v, p90s[i] if p90s else None) for i, v in enumerate(values)]
        print(f"| {title} | " + " | ".join(cells + ratio_cells(values)) + " |")

    medians = {}
    for config in CONFIGS:
        rs = [by.get((config.key, k)) for k in keys]
        medians[config.key] = [r["lock_step"]["median_ms"] if r else None for r in rs]
        row(f"({config.key}) {config.title}", medians[config.key],
            [r["lock_step"]["p90_ms"] if r else None for r in rs])
    extra = [a - b if a is not None and b is not None else None for a, b in zip(medians["a"], medians["b"])]
    row("cloud's extra cost (a) - (b), medians", extra)
    inference = [number(by[("c", k)]["diagnostics"].get("inference_p50_ms")) if ("c", k) in by else None
                 for k in keys]
    row("node inference_p50_ms in (c) (/diagnostics, forward pass only)", inference)
    path = [c - i if c is not None and i is not None else None for c, i in zip(medians["c"], inference)]
    row("depth-only message path: (c) median - inference_p50_ms", path)
    derived = {"cloud_extra_ms": dict(zip(labels, extra)), "inference_p50_ms_c": dict(zip(labels, inference)),
               "depth_only_message_path_ms": dict(zip(labels, path))}

    print(f"\n### input_size {input_size}: what the node reports in /diagnostics after the lock-step frames "
          "(its 10 s window, which may hold the warm-up frames)\n")
    print("| config: key " + head + "\n" + rule)
    for config in CONFIGS:
        rs = [by.get((config.key, k)) for k in keys]
        diag_keys = sorted({key for r in rs if r for key in r["diagnostics"]
                            if key.endswith("_ms") or key.startswith("cloud_skipped.")})
        for key in diag_keys:
            values = [number(r["diagnostics"].get(key)) if r else None for r in rs]
            print(f"| ({config.key}) {key} | " + " | ".join([cell(v) for v in values] + ratio_cells(values)) + " |")
        sizes = [r["message_bytes"] if r else {} for r in rs]
        for topic in config.outputs:
            values = [s.get(topic) for s in sizes]
            print(f"| ({config.key}) {topic} message bytes | "
                  + " | ".join([str(v) for v in values] + ratio_cells(values)) + " |")

    sus = [by[("a", k)].get("sustained") if ("a", k) in by else None for k in keys]
    if any(sus):
        print(f"\n### input_size {input_size}: sustained, configuration (a), {args.rate:g} Hz for "
              f"{args.sustain_s:g} s\n")
        print("| measure " + head + "\n" + rule)
        rows = (("published", "published"), ("received complete (depth + info + points)", "received_complete"),
                ("published, never received complete", "not_received"), ("node frames_in (delta)", "node_frames_in"),
                ("node frames_out (delta)", "node_frames_out"),
                ("node frames_dropped (delta, its queue of one)", "node_frames_dropped"))
        for title, key in rows:
            values = [number(s.get(key)) if s else None for s in sus]
            print(f"| {title} | " + " | ".join([cell(v, digits=0) for v in values] + ratio_cells(values)) + " |")
        for topic in next(c for c in CONFIGS if c.key == "a").outputs:
            values = [number(s["received_per_topic"].get(topic)) if s else None for s in sus]
            print(f"| received on {topic} | " + " | ".join([cell(v, digits=0) for v in values]
                                                           + ratio_cells(values)) + " |")
        values = [s["frames_out_per_s"] if s else None for s in sus]
        print("| complete frames out per s | " + " | ".join([cell(v, digits=2) for v in values]
                                                            + ratio_cells(values)) + " |")
        values = [s["latency"]["median_ms"] if s else None for s in sus]
        print("| latency of received frames, median ms | " + " | ".join([cell(v) for v in values]
                                                                        + ratio_cells(values)) + " |")
    return derived


# ----------------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=pathlib.Path, action="append",
                        help="checkout to run the node from (repeat to compare; default: this one)")
    parser.add_argument("--input-sizes", type=int, nargs="+", default=[70, 518])
    parser.add_argument("--configs", nargs="+", default=[c.key for c in CONFIGS], choices=[c.key for c in CONFIGS])
    parser.add_argument("--frames", type=int, default=20, help="lock-step frames measured per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="lock-step frames sent first, not measured")
    parser.add_argument("--sustain-s", type=float, default=10.0, help="seconds of the sustained run (0: none)")
    parser.add_argument("--rate", type=float, default=30.0, help="publishing rate of the sustained run, Hz")
    parser.add_argument("--device", default="cpu", help="the node's device parameter (cpu, cuda: untested here)")
    parser.add_argument("--encoder", default="vits", choices=("vits", "vitb", "vitl"))
    parser.add_argument("--frame-timeout", type=float, default=60.0, help="seconds to wait for one frame's outputs")
    parser.add_argument("--large-data", action="store_true",
                        help="node and this process with the large-data Fast DDS profile (docs/large_data.md)")
    parser.add_argument("--dds-profile", type=pathlib.Path, default=ROOT / "config" / "fastdds_large_data.xml",
                        help="the profile used with --large-data")
    parser.add_argument("--json", type=pathlib.Path, default=None,
                        help="default: benchmarks/results/bench_message_path[_large_data].json")
    args = parser.parse_args()
    if args.json is None:
        name = "bench_message_path_large_data.json" if args.large_data else "bench_message_path.json"
        args.json = ROOT / "benchmarks" / "results" / name
    if args.large_data:
        if not args.dds_profile.is_file():
            raise SystemExit(f"{args.dds_profile}: no such profile")
        # Before rclpy.init (Client) and inherited by the node processes (NodeProcess.start copies os.environ).
        # SYSTEM_DEFAULT: with LOCALHOST rmw_fastrtps adds its own 64 KB transports to the profile's.
        os.environ.update(FASTDDS_DEFAULT_PROFILES_FILE=str(args.dds_profile.resolve()),
                          ROS_AUTOMATIC_DISCOVERY_RANGE="SYSTEM_DEFAULT")
    projects = [p.resolve() for p in (args.project or [ROOT])]
    for project in projects:
        if not (project / "dav2_ros" / "node" / "depth_node.py").is_file():
            raise SystemExit(f"{project}: no dav2_ros/node/depth_node.py")
    labels = [describe_project(p) for p in projects]
    if len(set(labels)) < len(labels):
        labels = [f"{i}:{label}" for i, label in enumerate(labels)]
    bag = find_bag(projects)
    frame = read_frame(bag)
    cpu = cpu_description()
    load_start = os.getloadavg()
    started = time.monotonic()
    print(f"bag {bag}: {frame[0].format!r}, {len(frame[0].data)} bytes; CameraInfo {frame[1].width}x{frame[1].height}")
    print(f"projects: {', '.join(f'{label} ({p})' for label, p in zip(labels, projects))}", flush=True)

    client = Client()
    results: list[dict] = []
    run_id = [0]
    try:
        for input_size in args.input_sizes:
            for config in (c for c in CONFIGS if c.key in args.configs):
                t0 = time.monotonic()
                print(f"input_size {input_size}, ({config.key}) {config.title}: {len(projects)} node(s)...", flush=True)
                results += run_config(client, projects, config, input_size, args, frame, run_id)
                print(f"  done in {time.monotonic() - t0:.0f} s", flush=True)
    finally:
        client.close()
    load_end = os.getloadavg()

    transport = f"large-data profile {args.dds_profile}" if args.large_data else "localhost"
    print(f"\nCPU: {cpu['model']}, avx512_bf16 {'yes' if cpu['avx512_bf16'] else 'no'}, {cpu['cores']} cores; "
          f"device {args.device}, {args.encoder}, random weights; input 1280x720 JPEG (CompressedImage, reliable); "
          f"Fast DDS {transport}; load average {load_start[0]:.2f} -> {load_end[0]:.2f}")
    derived = {size: print_tables(results, labels, projects, size, args) for size in args.input_sizes}
    odd = [(r["namespace"], w) for r in results for w in r.get("node_warnings", [])]
    odd += [(r["namespace"], m) for r in results for m in r["lock_step"]["incomplete"]]
    if odd:
        print("\nnode warnings / incomplete frames:")
        for namespace, line in odd[:30]:
            print(f"  {namespace}: {line}")
    elapsed = time.monotonic() - started
    print(f"\n{elapsed:.0f} s in all")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "cpu": cpu, "large_data_profile": str(args.dds_profile) if args.large_data else None,
        "device": args.device, "encoder": args.encoder, "bag": str(bag),
        "projects": dict(zip(labels, map(str, projects))), "frames": args.frames, "warmup": args.warmup,
        "sustain_s": args.sustain_s, "rate_hz": args.rate, "load_average": [load_start, load_end],
        "elapsed_s": elapsed, "results": results, "derived": {str(k): v for k, v in derived.items()}}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

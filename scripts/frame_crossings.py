#!/usr/bin/env python3
"""How often one camera frame crosses between the node (dav2_ros/node/) and the rest of the package while the
node's worker handles it: from the pending message to its published outputs.

A crossing is a Python call (or a generator's resumption) whose caller is in dav2_ros/node/ and whose callee is in
another dav2_ros package, or the other way round (a callback into the node). They are counted by a profiler on the
worker thread, inside its rounds only (not the warm-up, not the executor's callbacks), while the real node runs one
camera on stand-in weights and a client subscribes to every output. `--project DIR` measures another checkout of
the package with this same script (e.g. a `git worktree` of an older commit), so two structures compare side by
side.

    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=47 .venv/bin/python scripts/frame_crossings.py
    ... --project /tmp/before --frames 5 --param sparse.input=depth --param sparse.metric_correction=true

Prints the crossings per frame by direction and package, and the distinct call sites (caller -> callee); writes
JSON to benchmarks/results/frame_crossings.json (git-ignored; --out to change).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import sys
import tempfile
import threading
import time
from typing import Any, Optional

ROOT = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

#: The worker's round in each structure: (function name, file name).
ROUND_FUNCTIONS = {("_process_frames", "depth_node.py"), ("__call__", "frame_round.py")}


class CrossingCounter:
    """A profile function that counts node <-> package crossings inside the worker's rounds."""

    def __init__(self, package_dir: pathlib.Path) -> None:
        self.package_dir = str(package_dir) + os.sep
        self.rounds = 0
        self.calls: collections.Counter = collections.Counter()  # (direction, other package) -> calls
        self.sites: collections.Counter = collections.Counter()  # "caller -> callee" -> calls
        self._round_frame: Optional[Any] = None
        self.enabled = False

    def package_of(self, frame: Any) -> Optional[str]:
        """The dav2_ros subpackage a frame's code belongs to ("node", "pipeline", ...; "dav2_ros" for a top-level
        module), or None outside dav2_ros. Dataclass-made methods (file "<string>") go by their class's module."""
        filename = frame.f_code.co_filename
        if filename == "<string>" and "self" in frame.f_locals:
            module = type(frame.f_locals["self"]).__module__
            parts = module.split(".")
            return (parts[1] if len(parts) > 2 else "dav2_ros") if parts[0] == "dav2_ros" else None
        if not filename.startswith(self.package_dir):
            return None
        relative = pathlib.PurePath(filename[len(self.package_dir):]).parts
        return relative[0] if len(relative) > 1 else "dav2_ros"

    @staticmethod
    def name_of(frame: Any) -> str:
        """module.qualified_name of a frame's function (a dataclass-made method by its class)."""
        code = frame.f_code
        if code.co_filename == "<string>" and "self" in frame.f_locals:
            cls = type(frame.f_locals["self"])
            return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__qualname__}.{code.co_name}"
        return f"{pathlib.Path(code.co_filename).stem}.{getattr(code, 'co_qualname', code.co_name)}"

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if not self.enabled:
            return
        code = frame.f_code
        if event == "return" and frame is self._round_frame:
            self._round_frame = None
            return
        if event != "call":
            return
        if self._round_frame is None:
            if (code.co_name, pathlib.Path(code.co_filename).name) in ROUND_FUNCTIONS:
                self._round_frame = frame
                self.rounds += 1
            return
        caller = frame.f_back
        if caller is None:
            return
        callee_package, caller_package = self.package_of(frame), self.package_of(caller)
        if callee_package is None or caller_package is None or (callee_package == "node") == (caller_package == "node"):
            return
        direction = "node -> " + callee_package if caller_package == "node" else caller_package + " -> node"
        self.calls[direction] += 1
        self.sites[f"{self.name_of(caller)} -> {self.name_of(frame)}"] += 1


def run(project: pathlib.Path, frames: int, extra: dict[str, Any]) -> dict[str, Any]:
    """Crossings per frame of the node in `project` (its dav2_ros is imported from there), with the `extra`
    parameters on top of the script's."""
    sys.path.insert(0, str(project))
    import numpy as np
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    import dav2_ros
    from dav2_ros.node.depth_node import DepthNode

    package_dir = pathlib.Path(dav2_ros.__file__).resolve().parent
    counter = CrossingCounter(package_dir)
    threading.setprofile(counter)  # the worker thread, started by the node, runs with it
    rclpy.init()
    weights = tempfile.mkdtemp()
    params = {"allow_random_weights": True, "weights_dir": weights, "input_size": 70, "encoder": "vits",
              "model_type": "metric", "device": "cpu", "backend": "torch", "precision": "fp32", "num_threads": 1,
              "cloud_rgb": True, **extra}
    node = DepthNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    client = rclpy.create_node("frame_crossings_client")
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    received: collections.Counter = collections.Counter()
    for msg_type, topic in ((Image, "depth/image"), (CameraInfo, "depth/camera_info"), (PointCloud2, "points"),
                            (Image, "depth/colored")):
        client.create_subscription(msg_type, topic, lambda _m, t=topic: received.update([t]), reliable)
    image_pub = client.create_publisher(Image, "image", reliable)
    info_pub = client.create_publisher(CameraInfo, "camera_info", reliable)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(client)
    width, height = 160, 120
    info = CameraInfo(width=width, height=height, k=[100.0, 0.0, 80.0, 0.0, 100.0, 60.0, 0.0, 0.0, 1.0])
    info.header.frame_id = "camera_optical"
    pixels = (np.random.default_rng(0).random((height, width, 3)) * 255).astype(np.uint8).tobytes()

    def spin_until(done, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
            if done():
                return True
        return False

    spin_until(lambda: all(p.get_subscription_count() for p in (image_pub, info_pub)), 10.0)
    spin_until(lambda: False, 1.0)  # the node's publishers meet the client's subscriptions
    for _ in range(3):
        info_pub.publish(info)
        spin_until(lambda: False, 0.2)
    counter.enabled = True
    for index in range(frames):
        msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=pixels)
        msg.header.frame_id = "camera_optical"
        msg.header.stamp.sec = index + 1
        before = received["points"]
        image_pub.publish(msg)
        if not spin_until(lambda: received["points"] > before and received["depth/colored"] >= index + 1, 60.0):
            raise SystemExit(f"frame {index} was not published in 60 s (received: {dict(received)})")
    counter.enabled = False
    threading.setprofile(None)
    executor.shutdown()
    node.destroy_node()
    client.destroy_node()
    rclpy.try_shutdown()
    rounds = max(counter.rounds, 1)
    return {"project": str(project), "frames": frames, "parameters": extra, "rounds": counter.rounds,
            "crossings_per_frame": sum(counter.calls.values()) / rounds,
            "by_direction": {k: v / rounds for k, v in sorted(counter.calls.items())},
            "call_sites": {k: v / rounds for k, v in sorted(counter.sites.items())},
            "outputs_received": dict(received)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=pathlib.Path, default=ROOT, help="the checkout to measure (default: this)")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="another node parameter (JSON value, else text), e.g. sparse.input=depth; repeatable")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "frame_crossings.json")
    args = parser.parse_args()
    extra = {}
    for item in args.param:
        name, _, text = item.partition("=")
        try:
            extra[name] = json.loads(text)
        except json.JSONDecodeError:
            extra[name] = text
    result = run(args.project.resolve(), args.frames, extra)
    print(f"{result['project']}: {result['crossings_per_frame']:g} crossings per frame "
          f"({result['rounds']} rounds, {args.frames} frames)\n")
    print("| direction | calls per frame |\n|---|---|")
    for direction, calls in result["by_direction"].items():
        print(f"| {direction} | {calls:g} |")
    print(f"\n{len(result['call_sites'])} call sites:\n")
    print("| caller -> callee | calls per frame |\n|---|---|")
    for site, calls in result["call_sites"].items():
        print(f"| {site} | {calls:g} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Demo: the real depth_node on a real bundled camera bag, over DDS on localhost.

Starts `depth_node` as its own process, replays the robot-camera frame of
test/data/bags/fiducial_board_611 (JPEG + calibrated CameraInfo) as a stream with fresh stamps,
and for each frame prints the latency (publish -> depth and cloud received). Writes, under
--outdir: depth_colored.png (the node's `depth/colored`), depth.npy (32FC1 meters),
points.ply (the organized cloud's finite points with color) and latency.json.

Without the official checkpoint in the weights folder it says so loudly and runs the node on
stand-in (random) weights: the pipeline, topics and units are real, the depth values are not.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import numpy as np

PROJECT_DIR = pathlib.Path(__file__).resolve().parent.parent
BAG = PROJECT_DIR / "test" / "data" / "bags" / "fiducial_board_611"
IMAGE_TOPIC = "/camera/image_raw/compressed"
INFO_TOPIC = "/camera/camera_info"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5, help="frames to stream (default 5)")
    parser.add_argument("--input-size", type=int, default=518, help="model input size, multiple of 14")
    parser.add_argument("--encoder", default="vits", choices=["vits", "vitb", "vitl"])
    parser.add_argument("--outdir", type=pathlib.Path, default=PROJECT_DIR / "demo_output")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each frame")
    return parser.parse_args()


def find_weights(encoder: str) -> bool:
    """True when the official metric (Hypersim) checkpoint is in the weights folder; else a loud banner."""
    from dav2_ros.weights import WeightsNotFound, resolve_checkpoint

    try:
        path = resolve_checkpoint("", encoder, "metric", "hypersim")
    except WeightsNotFound as err:
        bar = "!" * 100
        print(f"{bar}\n!! NO CHECKPOINT: {err}\n!! The demo runs on STAND-IN RANDOM WEIGHTS: "
              f"topics, units and timing are real, the depth values are meaningless.\n{bar}", flush=True)
        return False
    print(f"weights: {path}", flush=True)
    return True


def read_bag_frame() -> tuple[object, object]:
    """The bag's CompressedImage and CameraInfo as rclpy messages."""
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader
    from sensor_msgs.msg import CameraInfo, CompressedImage

    found: dict[str, object] = {}
    with AnyReader([BAG]) as reader:
        for connection, _, raw in reader.messages():
            if connection.topic == IMAGE_TOPIC:
                found["image"] = deserialize_message(bytes(raw), CompressedImage)
            elif connection.topic == INFO_TOPIC:
                found["info"] = deserialize_message(bytes(raw), CameraInfo)
    return found["image"], found["info"]


def start_node(args: argparse.Namespace, real_weights: bool) -> subprocess.Popen:
    """depth_node as a subprocess reading the camera's compressed stream; its log goes to our stdout."""
    params = {
        "encoder": args.encoder, "input_size": args.input_size, "input_transport": "compressed",
        "allow_random_weights": not real_weights, "cloud_rgb": True,
    }
    cmd = [sys.executable, "-m", "dav2_ros.node.depth_node", "--ros-args"]
    for name, value in params.items():
        cmd += ["-p", f"{name}:={str(value).lower() if isinstance(value, bool) else value}"]
    cmd += ["-r", f"image/compressed:={IMAGE_TOPIC}", "-r", f"camera_info:={INFO_TOPIC}"]
    return subprocess.Popen(cmd, cwd=PROJECT_DIR)


class Outputs:
    """Latest depth image, cloud and preview received from the node, with arrival times by stamp."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: dict[str, dict[int, float]] = {"depth": {}, "points": {}}
        self.depth = self.points = self.colored = None

    def on(self, kind: str):
        def callback(msg) -> None:
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            with self.lock:
                setattr(self, kind, msg)
                if kind in self.arrivals:
                    self.arrivals[kind][stamp] = time.monotonic()
        return callback

    def both_arrived(self, stamp: int) -> float | None:
        with self.lock:
            times = [self.arrivals[k].get(stamp) for k in ("depth", "points")]
        return None if None in times else max(times)


def save_outputs(outputs: Outputs, outdir: pathlib.Path) -> None:
    """Write the last frame's depth (npy), preview (png) and cloud (ply)."""
    import cv2

    from dav2_ros.conversions.ply import cloud_to_arrays, write_ply

    outdir.mkdir(parents=True, exist_ok=True)
    depth = np.frombuffer(bytes(outputs.depth.data), "<f4").reshape(outputs.depth.height, outputs.depth.width)
    np.save(outdir / "depth.npy", depth)
    if outputs.colored is not None:
        preview = np.frombuffer(bytes(outputs.colored.data), np.uint8).reshape(
            outputs.colored.height, outputs.colored.width, 3)
        cv2.imwrite(str(outdir / "depth_colored.png"), preview)
    xyz, rgb = cloud_to_arrays(outputs.points)
    write_ply(outdir / "points.ply", xyz, rgb)
    valid = np.isfinite(depth)
    print(f"depth {depth.shape[1]}x{depth.shape[0]} 32FC1, {valid.mean():.0%} valid, "
          f"range {np.nanmin(depth):.2f}-{np.nanmax(depth):.2f} m; cloud {len(xyz)} finite points")
    print(f"wrote {outdir / 'depth_colored.png'}, {outdir / 'depth.npy'}, {outdir / 'points.ply'}")


def main() -> int:
    args = parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

    real_weights = find_weights(args.encoder)
    image, info = read_bag_frame()
    node_proc = start_node(args, real_weights)
    rclpy.init()
    client = Node("dav2_demo_player")
    outputs = Outputs()
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    client.create_subscription(Image, "/depth/image", outputs.on("depth"), reliable)
    client.create_subscription(PointCloud2, "/points", outputs.on("points"), reliable)
    client.create_subscription(Image, "/depth/colored", outputs.on("colored"), reliable)
    image_pub = client.create_publisher(CompressedImage, IMAGE_TOPIC, qos_profile_sensor_data)
    info_pub = client.create_publisher(CameraInfo, INFO_TOPIC, qos_profile_sensor_data)
    executor = SingleThreadedExecutor()
    executor.add_node(client)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + args.timeout
        while image_pub.get_subscription_count() == 0 or info_pub.get_subscription_count() == 0:
            if node_proc.poll() is not None or time.monotonic() > deadline:
                print("demo: the node did not come up (see its log above)", file=sys.stderr)
                return 1
            time.sleep(0.1)
        for index in range(args.frames):
            stamp = client.get_clock().now().to_msg()
            image.header.stamp = info.header.stamp = stamp
            key = stamp.sec * 10**9 + stamp.nanosec
            info_pub.publish(info)
            sent = time.monotonic()
            image_pub.publish(image)
            deadline = sent + args.timeout
            while (arrived := outputs.both_arrived(key)) is None:
                if node_proc.poll() is not None or time.monotonic() > deadline:
                    print(f"demo: no depth for frame {index} within {args.timeout:.0f} s", file=sys.stderr)
                    return 1
                time.sleep(0.005)
            latencies.append(arrived - sent)
            print(f"frame {index}: {1000 * latencies[-1]:7.1f} ms  (publish -> depth + cloud received)", flush=True)
        save_outputs(outputs, args.outdir)
        steady = latencies[1:] or latencies
        print(f"latency over {len(latencies)} frames: median {1000 * np.median(steady):.1f} ms "
              f"(first frame {1000 * latencies[0]:.1f} ms), input_size {args.input_size}, {args.encoder}, "
              f"{'official' if real_weights else 'STAND-IN'} weights")
        (args.outdir / "latency.json").write_text(json.dumps(
            {"latency_s": latencies, "input_size": args.input_size, "encoder": args.encoder,
             "real_weights": real_weights}, indent=2))
        return 0
    finally:
        node_proc.send_signal(2)
        try:
            node_proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node_proc.kill()
        executor.shutdown()
        spinner.join(timeout=5)
        client.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())

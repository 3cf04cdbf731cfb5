#!/usr/bin/env python3
"""What the outputs cost to build and to serialize with rclpy (what `publish` costs in Python), by frame size,
cloud layout (xyz / xyzrgb) and stride: the 32FC1 depth Image and the organized PointCloud2.

    PYTHONPATH=. python benchmarks/bench_messages.py [--repeats 20]

Prints a markdown table and writes benchmarks/results/bench_messages.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rclpy.serialization import serialize_message  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from dav2_ros.conversions.image_codec import depth_to_image_fields  # noqa: E402
from dav2_ros.conversions.pointcloud import pointcloud_fields  # noqa: E402
from dav2_ros.geometry.backproject import backproject  # noqa: E402
from dav2_ros.geometry.intrinsics import Intrinsics  # noqa: E402
from dav2_ros.node.messages import image_msg, pointcloud_msg  # noqa: E402

FRAMES = {"640x480": (480, 640), "1280x720": (720, 1280)}


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median milliseconds of `fn` over `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "bench_messages.json")
    args = parser.parse_args()

    header = Header(frame_id="camera_optical_frame")
    rng = np.random.default_rng(0)
    rows = []
    print("| frame | message | stride | points | bytes | build ms | serialize ms | total ms |\n|" + "---|" * 8)
    for frame_name, (height, width) in FRAMES.items():
        depth = rng.uniform(0.3, 8.0, size=(height, width)).astype(np.float32)
        depth[rng.random(depth.shape) < 0.05] = np.nan
        bgr = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        intr = Intrinsics(fx=525.0 * width / 640, fy=525.0 * width / 640, cx=(width - 1) / 2, cy=(height - 1) / 2,
                          width=width, height=height)
        depth_msg = image_msg(header, depth_to_image_fields(depth))
        cases = [("Image 32FC1", 1, lambda: image_msg(header, depth_to_image_fields(depth)), depth_msg,
                  height * width)]
        for layout in ("xyz", "xyzrgb"):
            for stride in (1, 2, 4):
                xyz = backproject(depth, intr, stride)
                colors = np.ascontiguousarray(bgr[::stride, ::stride]) if layout == "xyzrgb" else None

                def build(xyz=xyz, colors=colors):
                    return pointcloud_msg(header, pointcloud_fields(xyz, colors))

                cases.append((f"PointCloud2 {layout}", stride, build, build(), xyz.shape[0] * xyz.shape[1]))
        for name, stride, build, msg, points in cases:
            size = len(serialize_message(msg))
            build_ms = median_ms(build, args.repeats)
            serialize_ms = median_ms(lambda msg=msg: serialize_message(msg), args.repeats)
            rows.append({"frame": frame_name, "message": name, "stride": stride, "points": points, "bytes": size,
                         "build_ms": build_ms, "serialize_ms": serialize_ms, "total_ms": build_ms + serialize_ms})
            print(f"| {frame_name} | {name} | {stride} | {points} | {size / 1e6:.2f} MB | {build_ms:.2f} | "
                  f"{serialize_ms:.2f} | {build_ms + serialize_ms:.2f} |", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"load_average_1min": os.getloadavg()[0], "rows": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

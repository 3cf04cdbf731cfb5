#!/usr/bin/env python3
"""Steady-state memory of the per-frame pipeline: resident set size (and CUDA memory where there is a GPU) over
many frames of estimator + FrameProcessor + PointCloud2 bytes, at a small input size so 1,000 frames take minutes.

    PYTHONPATH=. python benchmarks/bench_memory.py [--frames 1000] [--input-size 98] [--mode fast-int8]
    PYTHONPATH=. python benchmarks/bench_memory.py --cameras 2 --on-device   # batched cameras, device frame path

Prints RSS at the start (after the first frame), every tenth of the run and at the end; the growth from the
middle to the end is the figure that says "flat" or "leaks". Writes benchmarks/results/bench_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np
import psutil
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import modes  # noqa: E402
from dav2_ros.conversions.image_codec import depth_to_image_fields  # noqa: E402
from dav2_ros.conversions.pointcloud import pointcloud_fields  # noqa: E402
from dav2_ros.geometry.intrinsics import Intrinsics  # noqa: E402
from dav2_ros.pipeline.processing import FrameProcessor, FrameRequest, ProcessingSettings  # noqa: E402

FRAME = ROOT / "test" / "fixtures" / "parity" / "tum_vits_308.npz"  # a real 640x480 frame


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--input-size", type=int, default=98)
    parser.add_argument("--mode", default="fast-int8", choices=[m for m in modes.MODES if m != "transformers-fp32"])
    parser.add_argument("--cameras", type=int, default=1,
                        help="frames per step from this many cameras (own intrinsics), run as one batch")
    parser.add_argument("--on-device", action="store_true",
                        help="the device frame path (DeviceFramePath) also on the CPU: its reused buffers")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "bench_memory.json")
    args = parser.parse_args()

    with np.load(FRAME) as z:
        bgr = z["image_bgr"]
    height, width = bgr.shape[:2]
    cameras = [Intrinsics(fx=525.0 + 20 * c, fy=525.0 + 20 * c, cx=319.5, cy=239.5, width=width, height=height)
               for c in range(args.cameras)]
    estimator = modes.build_estimator(args.mode, "vits")
    processor = FrameProcessor(estimator, ProcessingSettings(input_size=args.input_size, max_valid_depth=20.0),
                               on_device=True if args.on_device else None, max_geometries=args.cameras)
    process = psutil.Process()
    cuda = torch.cuda.is_available() and estimator.device.type == "cuda"
    samples = []
    start = time.perf_counter()
    checkpoints = {0, args.frames - 1} | {args.frames * k // 10 for k in range(1, 10)}
    print(f"{args.mode}, vits, input_size {args.input_size}, {width}x{height} frames, {args.frames} steps of "
          f"{args.cameras} camera(s){', device frame path' if args.on_device else ''}")
    for i in range(args.frames):
        # Fresh frames each time (as from cameras): shift the image by a column per step, so no output is reused.
        frames = [np.roll(bgr, (i + 37 * c) % width, axis=1) for c in range(args.cameras)]
        outcomes = processor.process_batch([FrameRequest(f, "bgr", intr) for f, intr in zip(frames, cameras)])
        for frame, result in zip(frames, outcomes):
            depth_to_image_fields(result.depth)
            pointcloud_fields(result.xyz, frame)
        if i in checkpoints:
            rss = process.memory_info().rss / 2**20
            sample = {"frame": i + 1, "rss_mib": rss, "seconds": time.perf_counter() - start}
            if cuda:
                sample["cuda_allocated_mib"] = torch.cuda.memory_allocated() / 2**20
            samples.append(sample)
            print(f"  frame {i + 1:5d}: RSS {rss:8.1f} MiB" + (f", CUDA {sample['cuda_allocated_mib']:.1f} MiB"
                                                               if cuda else ""), flush=True)
    middle = min(samples, key=lambda s: abs(s["frame"] - args.frames // 2))
    growth = samples[-1]["rss_mib"] - middle["rss_mib"]
    print(f"RSS start {samples[0]['rss_mib']:.1f} MiB, middle {middle['rss_mib']:.1f} MiB, end "
          f"{samples[-1]['rss_mib']:.1f} MiB: {growth:+.1f} MiB over the second half; "
          f"{(time.perf_counter() - start) / args.frames * 1000:.0f} ms/frame")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"mode": args.mode, "input_size": args.input_size, "frames": args.frames,
                                    "cameras": args.cameras, "on_device": args.on_device,
                                    "samples": samples, "second_half_growth_mib": growth,
                                    "load_average_1min": os.getloadavg()[0]}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

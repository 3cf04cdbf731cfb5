#!/usr/bin/env python3
"""Several cameras in one node: throughput of batching their frames through the network (`batch_cameras: on`)
against running them one after the other, side by side in one run.

One round = one frame from each of N cameras (640x480, different intrinsics), through `FrameProcessor` exactly as
the node's worker runs them: `process_batch` on all N (batched), or on one frame at a time (sequential). Rounds of
the two ways alternate, so a change in machine load hits both alike; the ratio is the robust figure. The model runs
where the node would put it: CUDA (fp16, device frame path) when there is a GPU, else the CPU.

    PYTHONPATH=. python benchmarks/bench_cameras.py                       # N = 1, 2, 4 at input 266
    PYTHONPATH=. python benchmarks/bench_cameras.py --input-sizes 266 518 --rounds 5

Prints a markdown table and writes JSON to benchmarks/results/bench_cameras.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_model import cpu_name  # noqa: E402
from dav2_ros.geometry.intrinsics import Intrinsics  # noqa: E402
from dav2_ros.engines.estimator import DepthEstimator  # noqa: E402
from dav2_ros.pipeline.processing import FrameProcessor, FrameRequest, ProcessingSettings  # noqa: E402

FRAME_SOURCE = ROOT / "test" / "fixtures" / "parity" / "tum_metric20_vits_518.npz"  # a real 640x480 TUM frame


def camera_frames(count: int) -> list[FrameRequest]:
    """`count` cameras' frames: the TUM frame shifted per camera (different pixels), each with its own focal."""
    with np.load(FRAME_SOURCE) as data:
        base = data["image_bgr"]
    height, width = base.shape[:2]
    requests = []
    for i in range(count):
        focal = 500.0 + 40.0 * i
        intrinsics = Intrinsics(fx=focal, fy=focal, cx=(width - 1) / 2, cy=(height - 1) / 2, width=width,
                                height=height)
        requests.append(FrameRequest(np.ascontiguousarray(np.roll(base, 37 * i, axis=1)), "bgr", intrinsics))
    return requests


def one_round(processor: FrameProcessor, requests: list[FrameRequest], batched: bool) -> float:
    """Seconds to process one frame of every camera, the way the node's worker does."""
    start = time.perf_counter()
    if batched:
        outcomes = processor.process_batch(requests)
    else:
        outcomes = [processor.process_batch([request])[0] for request in requests]
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    return time.perf_counter() - start


def bench(estimator: DepthEstimator, cameras: int, input_size: int, rounds: int) -> dict:
    """Alternating batched/sequential rounds for N cameras; medians, frames per second and their ratio."""
    processor = FrameProcessor(estimator, ProcessingSettings(input_size=input_size), max_geometries=cameras)
    requests = camera_frames(cameras)
    for batched in (False, True):  # warm-up: allocator, kernels, buffers of both shapes
        one_round(processor, requests, batched)
    times: dict[str, list[float]] = {"sequential": [], "batched": []}
    for _ in range(rounds):
        for mode in ("sequential", "batched"):
            times[mode].append(one_round(processor, requests, mode == "batched"))
    result = {"cameras": cameras, "input_size": input_size, "rounds": rounds}
    for mode, values in times.items():
        median = statistics.median(values)
        result[mode] = {"round_median_s": median, "round_p90_s": float(np.percentile(values, 90)),
                        "frames_per_s": cameras / median, "samples_s": values}
    result["throughput_ratio"] = result["batched"]["frames_per_s"] / result["sequential"]["frames_per_s"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="vits", choices=("vits", "vitb"))
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--input-sizes", type=int, nargs="+", default=[266])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "bench_cameras.json")
    args = parser.parse_args()

    estimator = DepthEstimator.random(encoder=args.encoder, device=args.device, precision=args.precision)
    device = str(estimator.device)
    hardware = torch.cuda.get_device_name(estimator.device) if estimator.device.type == "cuda" else cpu_name()
    print(f"{args.encoder} on {device} ({hardware}), {estimator.precision}, torch threads {torch.get_num_threads()}")
    print("| cameras | input | sequential round (fps) | batched round (fps) | batched / sequential throughput |")
    print("|---|---|---|---|---|")
    results = []
    for input_size in args.input_sizes:
        for cameras in args.cameras:
            r = bench(estimator, cameras, input_size, args.rounds)
            results.append(r)
            s, b = r["sequential"], r["batched"]
            print(f"| {cameras} | {input_size} | {s['round_median_s'] * 1e3:.0f} ms ({s['frames_per_s']:.2f}) | "
                  f"{b['round_median_s'] * 1e3:.0f} ms ({b['frames_per_s']:.2f}) | {r['throughput_ratio']:.2f}x |",
                  flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"encoder": args.encoder, "device": device, "hardware": hardware,
                                    "precision": estimator.precision, "threads": torch.get_num_threads(),
                                    "results": results}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

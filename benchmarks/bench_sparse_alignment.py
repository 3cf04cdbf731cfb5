#!/usr/bin/env python3
"""Metric scale from a sparse depth sensor: accuracy on real ground truth, and cost per frame.

Accuracy: the real TUM RGB-D Kinect depth (test/data/bags/tum_rgbd, 16UC1 mm), a synthetic relative prediction
(affine in inverse depth + 2 % per-pixel noise) and sparse depths at (a) 500 random pixels, (b) 16 LiDAR-like rows
(every 4th pixel), each with 10 % (and, to show the limit, 30 %) gross outliers. AbsRel over ALL valid GT pixels
of: the robust fit (what the node does), plain least squares on the same points, and the true conversion (the
floor the 2 % noise leaves). Median and worst over `--seeds` draws.

Cost: the node's whole per-frame alignment (`SparseAligner.conversion`: decode the message, samples at the image's
pixels, robust fit, smoothing) at 640x480 and 1280x720, for a sparse depth Image (500 pixels; 16 rows) and a
PointCloud2 (30,000 points, a 16-beam LiDAR revolution's worth, projected), interleaved, median of `--repeats`;
with `--model-repeats N` (default 2) also the stand-in relative model at input 518 on the 640x480 frame, for the
share of the frame's time.

    PYTHONPATH=. python benchmarks/bench_sparse_alignment.py [--seeds 10] [--repeats 30] [--model-repeats 2]

Prints markdown tables and writes benchmarks/results/bench_sparse_alignment.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time
from types import SimpleNamespace

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dav2_ros.conversions.image_codec import depth_msg_to_array  # noqa: E402
from dav2_ros.geometry.intrinsics import Intrinsics  # noqa: E402
from dav2_ros.geometry.sparse_scale import fit_inverse_depth, sparse_pairs  # noqa: E402
from dav2_ros.offline.sparse_scenarios import (RELATIVE_A, RELATIVE_B, abs_rel_all, depth_from_fit,  # noqa: E402
                                               lidar_rows, random_pixels, synthetic_relative, with_outliers)
from dav2_ros.pipeline.sparse_alignment import FrameContext, Measurement, SparseAligner, SparseOptions  # noqa: E402

BAG = ROOT / "test" / "data" / "bags" / "tum_rgbd"
FRAMES = {"640x480": (480, 640), "1280x720": (720, 1280)}


def tum_gt() -> np.ndarray:
    from rosbags.highlevel import AnyReader

    with AnyReader([BAG]) as reader:
        [connection] = [c for c in reader.connections if c.topic == "/camera/depth/image_raw"]
        _, _, raw = next(reader.messages(connections=[connection]))
        return depth_msg_to_array(reader.deserialize(raw, connection.msgtype))


def accuracy(gt: np.ndarray, seeds: int) -> list[dict]:
    rows = []
    for outlier_fraction in (0.1, 0.3):
        for name in ("500 random pixels", "16 LiDAR rows"):
            robust, plain, floor, points = [], [], [], 0
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                relative = synthetic_relative(gt, 0.02, rng)
                sparse = random_pixels(gt, 500, rng) if name.startswith("500") else lidar_rows(gt)
                sparse, _ = with_outliers(sparse, outlier_fraction, rng)
                points = int(np.isfinite(sparse).sum())
                robust.append(abs_rel_all(depth_from_fit(relative, *fit_inverse_depth(relative, sparse)), gt)[0])
                x, d = sparse_pairs(relative, sparse)
                ls = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), 1.0 / d, rcond=None)[0]
                plain.append(abs_rel_all(depth_from_fit(relative, *ls), gt)[0])
                floor.append(abs_rel_all(depth_from_fit(relative, 1 / RELATIVE_A, -RELATIVE_B / RELATIVE_A), gt)[0])
            rows.append({"sparse": name, "points": points, "outliers": outlier_fraction,
                         "robust_median": statistics.median(robust), "robust_max": max(robust),
                         "plain_ls_median": statistics.median(plain), "true_fit_median": statistics.median(floor)})
    return rows


def smoothing(gt: np.ndarray, frames: int = 100) -> list[dict]:
    """AbsRel per frame (mean over `frames`) of the node's aligner with sparse.smoothing 0 / 0.3 / 0.6 on a static
    scene: (a) a steady network and a weak sensor (40 random pixels, 3 % noise, 10 % outliers per frame), where
    smoothing averages the sensor's noise; (b) the same with the network's global scale jittering +-5 % per frame,
    where the fit must follow each frame and smoothing can only cost (at most smoothing x 5 %)."""
    rows = []
    for jitter in (0.0, 0.05):
        for weight in (0.0, 0.3, 0.6):
            rng = np.random.default_rng(7)
            base = synthetic_relative(gt, 0.02, rng)
            aligner = SparseAligner("depth", "sparse")
            options = SparseOptions(input="depth", smoothing=weight, min_points=10)
            errors = []
            for i in range(frames):
                relative = base * np.float32(1.0 + jitter * rng.uniform(-1, 1))
                sparse = random_pixels(gt, 40, rng)
                sparse *= (1.0 + 0.03 * rng.standard_normal(sparse.shape)).astype(np.float32)
                sparse, _ = with_outliers(sparse, 0.1, rng)
                context = FrameContext(0.1 * i, "cam", gt.shape[1], gt.shape[0], None,
                                       Measurement(depth_message(sparse), 0.1 * i))
                conversion = aligner.conversion(relative, context, options, False)
                errors.append(abs_rel_all(depth_from_fit(relative, *conversion), gt)[0])
            rows.append({"network_jitter": jitter, "smoothing": weight, "abs_rel_mean": float(np.mean(errors)),
                         "abs_rel_p90": float(np.percentile(errors, 90))})
    return rows


def depth_message(sparse: np.ndarray, frame_id: str = "cam") -> SimpleNamespace:
    h, w = sparse.shape
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=0, nanosec=0), frame_id=frame_id),
                           height=h, width=w, encoding="32FC1", is_bigendian=0, step=4 * w,
                           data=np.ascontiguousarray(sparse, "<f4").tobytes())


def cloud_message(xyz: np.ndarray) -> SimpleNamespace:
    fields = [SimpleNamespace(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")]
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=0, nanosec=0), frame_id="cam"),
                           height=1, width=len(xyz), fields=fields, is_bigendian=False, point_step=12,
                           row_step=12 * len(xyz), data=np.ascontiguousarray(xyz, "<f4").tobytes())


def cost(gt: np.ndarray, repeats: int) -> list[dict]:
    import cv2

    rng = np.random.default_rng(0)
    cases = {}
    for frame, (height, width) in FRAMES.items():
        depth = cv2.resize(np.nan_to_num(gt, nan=3.0), (width, height), interpolation=cv2.INTER_NEAREST)
        relative = synthetic_relative(depth, 0.02, rng)
        intrinsics = Intrinsics(fx=525.0 * width / 640, fy=525.0 * width / 640, cx=width / 2 - 0.5,
                                cy=height / 2 - 0.5, width=width, height=height)
        # a LiDAR scan in the camera frame: 30,000 points on the GT surface
        v, u = rng.integers(0, height, 30000), rng.integers(0, width, 30000)
        z = depth[v, u]
        xyz = np.stack([(u - intrinsics.cx) * z / intrinsics.fx, (v - intrinsics.cy) * z / intrinsics.fy, z], 1)
        for label, kind, msg in (("Image, 500 pixels", "depth", depth_message(random_pixels(depth, 500, rng))),
                                 ("Image, 16 rows", "depth", depth_message(lidar_rows(depth))),
                                 ("PointCloud2, 30k points", "points", cloud_message(xyz))):
            aligner = SparseAligner(kind, "sparse")
            context = FrameContext(0.0, "cam", width, height, intrinsics, Measurement(msg, 0.0))
            cases[(frame, label)] = (aligner, context, relative, SparseOptions(input=kind))
    times: dict = {key: [] for key in cases}
    for _ in range(repeats):  # interleaved
        for key, (aligner, context, relative, options) in cases.items():
            start = time.perf_counter()
            conversion = aligner.conversion(relative, context, options, False)
            times[key].append(time.perf_counter() - start)
            assert conversion is not None
    return [{"frame": frame, "sparse": label, "median_ms": 1e3 * statistics.median(t),
             "p90_ms": 1e3 * float(np.percentile(t, 90))} for (frame, label), t in times.items()]


def model_ms(repeats: int) -> float | None:
    if repeats <= 0:
        return None
    from dav2_ros.engines.estimator import DepthEstimator

    estimator = DepthEstimator.random(encoder="vits", model_type="relative", device="cpu", precision="fp32")
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)
    estimator.infer(image, input_size=518)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        estimator.infer(image, input_size=518)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--model-repeats", type=int, default=2)
    parser.add_argument("--out", type=pathlib.Path,
                        default=ROOT / "benchmarks" / "results" / "bench_sparse_alignment.json")
    args = parser.parse_args()
    load = open('/proc/loadavg').read().split()[:3]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load}"
    gt = tum_gt()
    acc = accuracy(gt, args.seeds)
    print(f"Accuracy on TUM RGB-D GT ({np.isfinite(gt).sum()} valid pixels), relative prediction with 2 % noise, "
          f"{args.seeds} draws; AbsRel over all valid GT pixels\n")
    print("| sparse points | count | gross outliers | robust fit (median / worst) | plain least squares | "
          "true conversion (noise floor) |\n|---|---|---|---|---|---|")
    for r in acc:
        print(f"| {r['sparse']} | {r['points']} | {r['outliers']:.0%} | {r['robust_median']:.2%} / "
              f"{r['robust_max']:.2%} | {r['plain_ls_median']:.1%} | {r['true_fit_median']:.2%} |")
    smooth = smoothing(gt)
    print("\nSmoothing over time (static scene, 100 frames, a weak sensor: 40 points, 3 % noise, 10 % outliers)\n")
    print("| network's global scale per frame | sparse.smoothing | AbsRel mean | AbsRel p90 |\n|---|---|---|---|")
    for r in smooth:
        print(f"| {'steady' if r['network_jitter'] == 0 else '+-5 % jitter'} | {r['smoothing']:.1f} | "
              f"{r['abs_rel_mean']:.2%} | {r['abs_rel_p90']:.2%} |")
    timing = cost(gt, args.repeats)
    model = model_ms(args.model_repeats)
    print(f"\nCost of the whole per-frame alignment ({machine}), median of {args.repeats} interleaved\n")
    print("| frame | sparse input | median ms | p90 ms |" + (" share of a frame (model at 518) |" if model else "")
          + "\n|---|---|---|---|" + ("---|" if model else ""))
    for r in timing:
        share = f" {r['median_ms'] / (model + r['median_ms']):.2%} |" if model else ""
        print(f"| {r['frame']} | {r['sparse']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} |{share}")
    if model:
        print(f"\nstand-in relative vits at input 518 on 640x480: {model:.0f} ms (median of {args.model_repeats})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "accuracy": acc, "smoothing": smooth, "cost": timing,
                                    "model_ms": model},
                                   indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

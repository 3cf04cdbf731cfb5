#!/usr/bin/env python3
"""The depth filters for costmaps: their effect on real ground truth and their cost per frame.

1. Flying pixels (`edge_mask`): the TUM RGB-D ground-truth depth (test/data/bags/tum_rgbd) averaged down to the
   DPT head's prediction grid (296x392 for 640x480 at input_size 518) or to the coarser ViT patch grid (37x49),
   bilinear back up (dav2_ros/offline/filter_eval.py). For each threshold and dilation: the share of the pixels
   more than 10 % off the ground truth that the filter removes, the share of the pixels >= 8 px from a true depth
   edge that it keeps, and the share of all pixels removed. The criterion: >= 90 % removed, >= 97 % kept.
2. Temporal (`TemporalFilter` off / scale / ema) on sequences made from the ground-truth frame: a static scene with
   +-5 % global scale jitter and 0.5 % pixel noise (100 frames; the per-pixel coefficient of variation), an object
   appearing (a quarter of the image at half its depth; frames until it is within 5 %), a camera driving towards
   the scene at 3 cm per frame (the worst median error from frame 5 on; the lag at the start of the motion), each
   with and without the jitter; the static CV cut over 10 noise seeds (median and worst); the camera standing 20
   frames, driving 40, standing 20 (the lag when it starts, the overshoot when it stops; without jitter, and with
   it as the mean signed error over 10 seeds).
3. Cost: each filter's time per frame at 640x480 and 1280x720 (numpy; the torch twin of edge_mask on the CPU too),
   interleaved, medians; and the non-model share of a whole FrameProcessor frame with both filters on (random vits
   weights at input_size 518: the network's cost does not depend on its weights).

    PYTHONPATH=. python benchmarks/bench_depth_filters.py            # ~3 min on 2 cores
    PYTHONPATH=. python benchmarks/bench_depth_filters.py --quick    # fewer repeats, no end-to-end frame

Prints markdown tables and writes JSON to benchmarks/results/bench_depth_filters.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dav2_ros.geometry.depth_filters import (DEFAULT_EDGE_DILATION, DEFAULT_EDGE_THRESHOLD,  # noqa: E402
                                             DEFAULT_TEMPORAL_MODE, TemporalFilter, TemporalOptions, edge_mask)
from dav2_ros.offline import filter_eval as fe  # noqa: E402

BAG = ROOT / "test" / "data" / "bags" / "tum_rgbd"
THRESHOLDS = (0.01, 0.014, 0.016, 0.018, 0.02, 0.025, 0.03, 0.04, 0.05, 0.07, 0.1)
DILATIONS = (0, 1, 2, 3)
SIZES = {"640x480": (480, 640), "1280x720": (720, 1280)}


def cpu_name() -> str:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def load_average() -> str:
    return pathlib.Path("/proc/loadavg").read_text().split()[0:3].__str__()


# ------------------------------------------------------------------------------------------- flying pixels
def flying_pixels(gt: np.ndarray) -> dict[str, Any]:
    distance = fe.distance_to_true_edges(gt)
    grids = fe.network_grids(*gt.shape)
    curve: dict[str, list[dict]] = {}
    for name, grid in grids.items():
        blurred = fe.blur_like_network(gt, grid)
        curve[name] = [vars(fe.score_edges(gt, blurred, t, d, distance)) for d in DILATIONS for t in THRESHOLDS]
    print(f"\n### Flying pixels: TUM RGB-D ground truth blurred to the network's grids {grids}\n")
    print("| dilation | threshold | DPT grid: flying removed | far kept | all removed | patch grid: flying removed "
          "| far kept | all removed |")
    print("|---|---|---|---|---|---|---|---|")
    for dpt, patch in zip(curve["dpt"], curve["patch"]):
        mark = " **(default)**" if (dpt["threshold"], dpt["dilation"]) == (DEFAULT_EDGE_THRESHOLD,
                                                                           DEFAULT_EDGE_DILATION) else ""
        print(f"| {dpt['dilation']} | {dpt['threshold']:g}{mark} | {100 * dpt['flying_removed']:.1f} % | "
              f"{100 * dpt['far_kept']:.1f} % | {100 * dpt['removed']:.1f} % | {100 * patch['flying_removed']:.1f} % "
              f"| {100 * patch['far_kept']:.1f} % | {100 * patch['removed']:.1f} % |")
    flying = {name: curve[name][0]["flying"] for name in curve}
    print(f"\npixels > 10 % off: {flying}; pixels >= 8 px from a true edge: {curve['dpt'][0]['far']}")
    passing = [(d["threshold"], d["dilation"]) for d, p in zip(curve["dpt"], curve["patch"])
               if min(d["flying_removed"], p["flying_removed"]) >= 0.9 and min(d["far_kept"], p["far_kept"]) >= 0.97]
    print(f"(threshold, dilation) meeting both criteria on both grids: {passing}")
    return {"grids": grids, "curve": curve, "passing_both_grids": passing,
            "default": [DEFAULT_EDGE_THRESHOLD, DEFAULT_EDGE_DILATION]}


# ------------------------------------------------------------------------------------------------ temporal
def frames_until(errors: list[float], bound: float) -> int | None:
    """The first frame index from which every error stays <= bound."""
    for k in range(len(errors)):
        if all(e <= bound for e in errors[k:]):
            return k
    return None


def temporal(gt: np.ndarray) -> dict[str, Any]:
    modes = ("off", "scale", "ema")
    results: dict[str, Any] = {"options": vars(TemporalOptions())}
    static = fe.static_sequence(gt, count=100, jitter=0.05, noise=0.005)
    results["static_cv"] = {m: fe.coefficient_of_variation(list(fe.run_filter(m, static))) for m in modes}
    for jitter in (0.0, 0.05):
        key = f"jitter_{jitter:g}"
        appear, region = fe.appearing_sequence(gt, before=20, after=20, jitter=jitter)
        drive = fe.driving_sequence(gt, count=40, step_m=0.03, jitter=jitter)
        results[key] = {}
        for m in modes:
            out = list(fe.run_filter(m, appear))
            appear_err = [fe.median_error(o, t, region) for o, t in zip(out[20:], appear.truth[20:])]
            drive_err = [fe.median_error(o, t) for o, t in zip(fe.run_filter(m, drive), drive.truth)]
            results[key][m] = {"appear_errors": appear_err, "appear_frames_to_5pct": frames_until(appear_err, 0.05),
                               "drive_errors": drive_err, "drive_max_from_frame5": max(drive_err[5:]),
                               "drive_peak_lag": max(drive_err[:15])}
    print(f"\n### Temporal filter ({TemporalOptions()})\n")
    cv = results["static_cv"]
    print("| mode | static CV (+-5 % jitter, 0.5 % noise) | CV cut | object appears: frames to <= 5 % "
          "(no jitter / jitter) | driving 3 cm/frame: worst error from frame 5 (no jitter / jitter) | "
          "driving: worst error in frames 0-14 (lag at the start, no jitter) |")
    print("|---|---|---|---|---|---|")
    for m in modes:
        a, b = results["jitter_0"][m], results["jitter_0.05"][m]
        print(f"| {m}{' (default)' if m == DEFAULT_TEMPORAL_MODE else ''} | {100 * cv[m]:.2f} % | "
              f"{cv['off'] / cv[m]:.2f}x | {a['appear_frames_to_5pct']} / {b['appear_frames_to_5pct']} | "
              f"{100 * a['drive_max_from_frame5']:.2f} % / {100 * b['drive_max_from_frame5']:.2f} % | "
              f"{100 * a['drive_peak_lag']:.2f} % |")
    for m in ("scale", "ema"):
        errs = results["jitter_0"][m]["drive_errors"]
        print(f"{m}: driving error per frame (no jitter), %: " + " ".join(f"{100 * e:.1f}" for e in errs[:20]))
    results["static_cv_seeds"] = {m: fe.static_cv_cut(gt, m) for m in ("scale", "ema")}
    results["start_stop"] = {m: start_stop(gt, m) for m in ("scale", "ema")}
    print("\n| mode | static CV cut over 10 seeds: median (worst) | standstill -> driving 3 cm/frame -> standstill, "
          "no jitter: worst error after the start / from 5 frames after it / after the stop / from 5 frames after "
          "it | +-5 % jitter, mean signed error over 10 seeds: peak lag after the start / peak after the stop |")
    print("|---|---|---|---|")
    for m in ("scale", "ema"):
        cuts = [raw / out for raw, out in results["static_cv_seeds"][m]]
        r = results["start_stop"][m]
        print(f"| {m} | {statistics.median(cuts):.2f}x ({min(cuts):.2f}x) | {100 * r['start_peak']:.2f} % / "
              f"{100 * r['start_from5']:.2f} % / {100 * r['stop_peak']:.2f} % / {100 * r['stop_from5']:.2f} % | "
              f"{100 * r['jitter_start_lag']:+.2f} % / {100 * r['jitter_stop_overshoot']:+.2f} % |")
    return results


def start_stop(gt: np.ndarray, mode: str, still: int = 20, moving: int = 40, seeds: range = range(10)
               ) -> dict[str, Any]:
    """The lag when the camera starts driving after a standstill and the overshoot when it stops."""
    plain = fe.start_stop_sequence(gt, still=still, moving=moving, jitter=0.0)
    errors = [fe.median_error(o, t) for o, t in zip(fe.run_filter(mode, plain), plain.truth)]
    stop = still + moving
    signed = []
    for seed in seeds:
        noisy = fe.start_stop_sequence(gt, still=still, moving=moving, seed=seed)
        signed.append([fe.signed_log_error(o, t) for o, t in zip(fe.run_filter(mode, noisy), noisy.truth)])
    mean = np.mean(signed, axis=0)
    return {"errors": errors, "start_peak": max(errors[still:stop]), "start_from5": max(errors[still + 5:stop]),
            "stop_peak": max(errors[stop:]), "stop_from5": max(errors[stop + 5:]), "jitter_mean_signed": list(mean),
            "jitter_start_lag": float(mean[still:stop].max()), "jitter_stop_overshoot": float(mean[stop:].min())}


# ---------------------------------------------------------------------------------------------------- cost
def timed(function: Callable[[], Any]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def cost(gt: np.ndarray, repeats: int) -> dict[str, Any]:
    import cv2
    import torch

    from dav2_ros.engines.torch_runtime.device_geometry import edge_keep

    results: dict[str, Any] = {}
    print(f"\n### Cost per frame (median of {repeats}, interleaved; {cpu_name()})\n")
    print("| frame | edge_mask (numpy) | edge_keep (torch, CPU, 1 thread) | temporal scale | temporal ema |")
    print("|---|---|---|---|---|")
    for name, (height, width) in SIZES.items():
        frame = cv2.resize(np.nan_to_num(gt, nan=0.0), (width, height), interpolation=cv2.INTER_NEAREST)
        frame[frame == 0] = np.nan
        blurred = fe.blur_like_network(frame, (height // 2, width // 2))
        tensor = torch.from_numpy(blurred)
        scale, ema = TemporalFilter("scale"), TemporalFilter("ema")
        rng = np.random.default_rng(0)
        jittered = [blurred * np.float32(1 + rng.uniform(-0.05, 0.05)) for _ in range(8)]
        scale.update(jittered[0], stamp=0.0), ema.update(jittered[0], stamp=0.0)
        times: dict[str, list[float]] = {"edge_mask": [], "edge_keep_torch": [], "scale": [], "ema": []}
        for k in range(repeats):
            times["edge_mask"].append(timed(lambda: edge_mask(blurred)))
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # on a loaded 2-core machine OpenMP's threads wait for each other (x10-100)
            times["edge_keep_torch"].append(timed(
                lambda: edge_keep(tensor, DEFAULT_EDGE_THRESHOLD, DEFAULT_EDGE_DILATION)))
            torch.set_num_threads(threads)
            frame_k = jittered[(k + 1) % len(jittered)]
            times["scale"].append(timed(lambda: scale.update(frame_k, stamp=0.1 * (k + 1))))
            times["ema"].append(timed(lambda: ema.update(frame_k, stamp=0.1 * (k + 1))))
        medians = {key: 1e3 * statistics.median(values) for key, values in times.items()}
        results[name] = medians
        print(f"| {name} | {medians['edge_mask']:.1f} ms | {medians['edge_keep_torch']:.1f} ms | "
              f"{medians['scale']:.1f} ms | {medians['ema']:.1f} ms |")
    return results


def end_to_end(repeats: int) -> dict[str, Any]:
    """A whole FrameProcessor frame (random vits, input 518, 640x480) with both filters on vs off, interleaved."""
    from dav2_ros.geometry.intrinsics import Intrinsics
    from dav2_ros.engines.estimator import DepthEstimator
    from dav2_ros.pipeline.processing import FrameProcessor, FrameRequest, ProcessingSettings

    fixture = ROOT / "test" / "fixtures" / "parity" / "tum_vits_308.npz"
    with np.load(fixture) as z:
        image = z["image_bgr"]
    height, width = image.shape[:2]
    intr = Intrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=width, height=height)
    estimator = DepthEstimator.random(encoder="vits", model_type="metric", device="cpu")
    on = FrameProcessor(estimator, ProcessingSettings(input_size=518, flying_pixel_threshold=DEFAULT_EDGE_THRESHOLD,
                                                      flying_pixel_dilation=DEFAULT_EDGE_DILATION))
    off = FrameProcessor(estimator, ProcessingSettings(input_size=518))
    temporal = TemporalFilter(DEFAULT_TEMPORAL_MODE)
    on.process(image, "bgr", intr), off.process(image, "bgr", intr)  # warm-up
    rows: dict[str, list[dict[str, float]]] = {"filters_on": [], "filters_off": []}
    for k in range(repeats):
        result = on.process_batch([FrameRequest(image, "bgr", intr, temporal=temporal, stamp=0.1 * k)])[0]
        rows["filters_on"].append(result.timings)
        rows["filters_off"].append(off.process(image, "bgr", intr).timings)
    out: dict[str, Any] = {}
    print(f"\n### One whole frame, 640x480, random vits at input_size 518, {estimator.precision} "
          f"(median of {repeats}, interleaved)\n")
    print("| filters | total | model (preprocess + inference + postprocess) | depth (mask + flying pixels) | "
          "temporal | cloud | non-model share |")
    print("|---|---|---|---|---|---|---|")
    for name, timings in rows.items():
        med = {key: 1e3 * statistics.median(t[key] for t in timings) for key in timings[0]}
        model = med["preprocess"] + med["inference"] + med["postprocess"]
        share = statistics.median((t["total"] - t["preprocess"] - t["inference"] - t["postprocess"]) / t["total"]
                                  for t in timings)  # per frame, then the median: never below 0
        out[name] = dict(med, model_ms=model, non_model_share=share)
        print(f"| {name} | {med['total']:.0f} ms | {model:.0f} ms | {med['depth']:.1f} ms | "
              f"{med.get('temporal', 0.0):.1f} ms | {med['cloud']:.1f} ms | {100 * share:.1f} % |")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no end-to-end frame")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.quick else 21)
    gt = fe.load_ground_truth(BAG)[0]
    report: dict[str, Any] = {"cpu": cpu_name(), "cores": os.cpu_count(), "load_before": load_average()}
    print(f"{report['cpu']}, {report['cores']} cores, load average {report['load_before']}")
    report["flying_pixels"] = flying_pixels(gt)
    report["temporal"] = temporal(gt)
    report["cost"] = cost(gt, repeats)
    if not args.quick:
        report["end_to_end"] = end_to_end(max(3, repeats // 4))
    report["load_after"] = load_average()
    print(f"\nload average after: {report['load_after']}")
    path = ROOT / "benchmarks" / "results" / "bench_depth_filters.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=float))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Per-frame pipeline latency, stage by stage, for every inference mode side by side in one run.

One frame = what the node does with a camera Image: decode (sensor_msgs/Image -> array; JPEG decoding of a
CompressedImage is timed beside it), preprocess, inference, postprocess (upsample to the frame + validity mask),
cloud (back-projection + PointCloud2 bytes), publish (building the 32FC1 Image, CameraInfo and PointCloud2 messages
and rclpy.serialization.serialize_message of each: what rclpy's publish costs in Python), and end to end.

Modes (benchmarks/modes.py): exact-fp32, fast-fp32, fast-bf16, fast-int8 and transformers' model + image processor
on the same frames and weights. Within one configuration the modes run interleaved (repeat 1 of every mode, then
repeat 2, ...), so a change in machine load hits them alike; ratios are the robust figures on a shared machine.
Each row also shows the model's FLOPs and how close the forward pass gets to the hardware limit (the FLOPs at the
GEMM rates measured at the start of the run, benchmarks/flops.py).

    PYTHONPATH=. python benchmarks/bench_pipeline.py --quick      # vits, 518, 640x480, 5 repeats
    PYTHONPATH=. python benchmarks/bench_pipeline.py              # vits+vitb x 266/364/518 x 640x480/1280x720

Prints a markdown table and writes JSON to benchmarks/results/bench_pipeline.json (git-ignored).
"""

from __future__ import annotations

import argparse
import array
import json
import os
import pathlib
import statistics
import sys
import time
from typing import Any

import cv2
import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

import flops  # noqa: E402
from bench_model import cpu_name  # noqa: E402  (one definition for both benchmarks)
import modes  # noqa: E402
from dav2_ros.conversions.compressed_codec import compressed_msg_to_array  # noqa: E402
from dav2_ros.conversions.image_codec import depth_to_image_fields, image_msg_to_array  # noqa: E402
from dav2_ros.conversions.pointcloud import pointcloud_fields  # noqa: E402
from dav2_ros.geometry.intrinsics import Intrinsics  # noqa: E402
from dav2_ros.node.messages import depth_camera_info, image_msg, pointcloud_msg  # noqa: E402
from dav2_ros.pipeline.processing import FrameProcessor, ProcessingSettings  # noqa: E402

FRAME_SOURCE = ROOT / "test" / "fixtures" / "parity" / "tum_metric20_vits_518.npz"  # a real 640x480 TUM frame
FRAMES = {"640x480": (480, 640), "1280x720": (720, 1280)}
STAGES = ("decode", "preprocess", "inference", "postprocess", "cloud", "publish", "end_to_end")


def cpu_flags() -> list[str]:
    """The CPU features that decide the engines' speed (bf16/int8 instructions), from /proc/cpuinfo."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return [flag for flag in wanted if flag in flags]


def make_frame(height: int, width: int) -> tuple[np.ndarray, Intrinsics]:
    """The TUM RGB-D frame (RGB) resized to height x width, and pinhole intrinsics for that size."""
    with np.load(FRAME_SOURCE) as z:
        rgb = np.ascontiguousarray(z["image_bgr"][..., ::-1])
    if rgb.shape[:2] != (height, width):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    focal = 525.0 * width / 640.0
    return rgb, Intrinsics(fx=focal, fy=focal, cx=(width - 1) / 2, cy=(height - 1) / 2, width=width, height=height)


def image_message(rgb: np.ndarray) -> Image:
    """An rgb8 sensor_msgs/Image of the frame, as a camera driver would publish it."""
    height, width = rgb.shape[:2]
    data = array.array("B")
    data.frombytes(rgb.tobytes())
    return Image(header=Header(frame_id="camera_optical_frame"), height=height, width=width, encoding="rgb8",
                 is_bigendian=0, step=width * 3, data=data)


def jpeg_message(rgb: np.ndarray) -> CompressedImage:
    """The frame as a JPEG CompressedImage (quality 90, image_transport's default is 95)."""
    ok, encoded = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    data = array.array("B")
    data.frombytes(encoded.tobytes())
    return CompressedImage(header=Header(frame_id="camera_optical_frame"), format="jpeg", data=data)


def run_frame(processor: FrameProcessor, msg: Image, intrinsics: Intrinsics) -> dict[str, float]:
    """One frame through decode -> FrameProcessor -> PointCloud2 bytes -> messages + serialization; seconds per
    stage, plus the process CPU seconds of the whole frame ("cpu")."""
    start, cpu_start = time.perf_counter(), time.process_time()
    image, color_order = image_msg_to_array(msg)
    decoded = time.perf_counter()
    result = processor.process(image, color_order, intrinsics)
    processed = time.perf_counter()
    fields = pointcloud_fields(result.xyz)
    clouded = time.perf_counter()
    serialize_message(image_msg(msg.header, depth_to_image_fields(result.depth)))
    serialize_message(depth_camera_info(msg.header, result.depth_intrinsics))
    serialize_message(pointcloud_msg(msg.header, fields))
    done = time.perf_counter()
    t = result.timings
    return {"decode": decoded - start, "preprocess": t["preprocess"], "inference": t["inference"],
            "postprocess": t["postprocess"] + t["depth"], "cloud": t["cloud"] + (clouded - processed),
            "publish": done - clouded, "end_to_end": done - start, "cpu": time.process_time() - cpu_start,
            "unaccounted": (processed - decoded) - (t["preprocess"] + t["inference"] + t["postprocess"]
                                                    + t["depth"] + t["cloud"])}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (linear interpolation), as numpy computes it."""
    return float(np.percentile(np.asarray(values), q))


def summarize(samples: list[dict[str, float]]) -> dict[str, Any]:
    """Median and p90 of every stage over the timed repeats."""
    out: dict[str, Any] = {"repeats": len(samples)}
    for key in (*STAGES, "cpu", "unaccounted"):
        values = [s[key] for s in samples]
        out[f"{key}_median_s"] = statistics.median(values)
        out[f"{key}_p90_s"] = percentile(values, 90)
    return out


def bench_configuration(encoder: str, frame_name: str, input_size: int, estimators: dict[str, Any],
                        args: argparse.Namespace, rates: dict) -> list[dict[str, Any]]:
    """Every mode on one (encoder, frame, input size), interleaved; one summary row per mode."""
    height, width = FRAMES[frame_name]
    rgb, intrinsics = make_frame(height, width)
    msg = image_message(rgb)
    work = flops.frame_flops(encoder, height, width, input_size)
    settings = ProcessingSettings(input_size=input_size, max_valid_depth=20.0, publish_cloud=True)
    active = {}
    for mode, estimator in estimators.items():
        if mode == "fast-bf16" and work["total"] > args.bf16_max_gflop * 1e9:
            print(f"  {mode}: skipped ({work['total'] / 1e9:.0f} GFLOP > --bf16-max-gflop {args.bf16_max_gflop:g}; "
                  "bf16 is emulated on this CPU)", flush=True)
            continue
        active[mode] = FrameProcessor(estimator, settings)
        run_frame(active[mode], msg, intrinsics)  # warm-up: allocator, oneDNN primitives, caches
    samples: dict[str, list[dict[str, float]]] = {mode: [] for mode in active}
    for repeat in range(args.repeats):
        for mode, processor in active.items():
            if mode == "fast-bf16" and repeat >= args.bf16_repeats:
                continue
            samples[mode].append(run_frame(processor, msg, intrinsics))
    jpeg = jpeg_message(rgb)
    jpeg_times = []
    for _ in range(max(args.repeats, 5)):
        t = time.perf_counter()
        compressed_msg_to_array(jpeg)
        jpeg_times.append(time.perf_counter() - t)
    rows = []
    for mode, mode_samples in samples.items():
        row = {"encoder": encoder, "frame": frame_name, "input_size": input_size, "mode": mode,
               "network_input": [work["net_height"], work["net_width"]], "gflop": work["total"] / 1e9,
               "gflop_split": {k: work[k] / 1e9 for k in ("linear", "attention", "conv")},
               "decode_jpeg_median_s": statistics.median(jpeg_times), "jpeg_bytes": len(jpeg.data),
               **summarize(mode_samples)}
        floor = flops.floor_seconds(work, rates, modes.MODE_DTYPE[mode])
        row["hardware_floor_s"] = floor
        row["percent_of_hardware_limit"] = 100.0 * floor / row["inference_median_s"]
        row["achieved_gflops"] = work["total"] / 1e9 / row["inference_median_s"]
        row["non_model_share"] = 1.0 - row["inference_median_s"] / row["end_to_end_median_s"]
        rows.append(row)
    reference = next((r for r in rows if r["mode"] == "transformers-fp32"), None)
    for row in rows:
        row["speedup_vs_transformers"] = (reference["end_to_end_median_s"] / row["end_to_end_median_s"]
                                          if reference else None)
        print_row(row)
    return rows


def print_row(r: dict[str, Any]) -> None:
    """One markdown table row (milliseconds)."""
    ms = {k: 1000 * r[f"{k}_median_s"] for k in STAGES}
    ratio = f"{r['speedup_vs_transformers']:.2f}x" if r["speedup_vs_transformers"] else "-"
    print(f"| {r['encoder']} | {r['frame']} | {r['input_size']} | {r['mode']} | {ms['end_to_end']:.0f} | "
          f"{1000 * r['end_to_end_p90_s']:.0f} | {ms['decode']:.2f} | {ms['preprocess']:.1f} | {ms['inference']:.0f} | "
          f"{ms['postprocess']:.1f} | {ms['cloud']:.1f} | {ms['publish']:.1f} | {100 * r['non_model_share']:.1f}% | "
          f"{ratio} | {r['percent_of_hardware_limit']:.0f}% | {1000 * r['cpu_median_s']:.0f} | {r['repeats']} |",
          flush=True)


TABLE_HEADER = ("| encoder | frame | input | mode | e2e median ms | e2e p90 ms | decode ms | preprocess ms"
                " | inference ms"
                " | postprocess ms | cloud ms | publish ms | non-model share | speed-up vs transformers"
                " | % of HW limit | CPU ms | runs |\n|" + "---|" * 17)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="vits, 518, 640x480 only")
    parser.add_argument("--encoders", nargs="+", default=["vits", "vitb"], choices=["vits", "vitb"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[266, 364, 518])
    parser.add_argument("--frames", nargs="+", default=list(FRAMES), choices=list(FRAMES))
    parser.add_argument("--modes", nargs="+", default=list(modes.MODES), choices=list(modes.MODES))
    parser.add_argument("--repeats", type=int, default=None, help="timed frames per mode (default 5 quick, 3 grid)")
    parser.add_argument("--bf16-repeats", type=int, default=2, help="timed frames for fast-bf16 (emulated: slow)")
    parser.add_argument("--bf16-max-gflop", type=float, default=170.0,
                        help="skip fast-bf16 above this many GFLOP per frame (it runs at ~3 GFLOP/s without AMX)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default = cores)")
    parser.add_argument("--gemm-seconds", type=float, default=0.5, help="timing per GEMM rate measurement")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "bench_pipeline.json")
    args = parser.parse_args()
    if args.quick:
        args.encoders, args.sizes, args.frames = ["vits"], [518], ["640x480"]
    args.repeats = args.repeats or (5 if args.quick else 3)
    if args.threads:
        torch.set_num_threads(args.threads)

    machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
               "torch": torch.__version__, "threads": torch.get_num_threads(), "numpy": np.__version__,
               "load_average_1min_start": os.getloadavg()[0], "cpu_flags": cpu_flags()}
    try:
        import openvino
        machine["openvino"] = openvino.get_version()
    except ImportError:
        pass
    print(f"machine: {machine}", flush=True)
    rates = flops.measure_matmul(None, args.gemm_seconds)
    machine["gemm_gflops"] = rates
    print("GEMM GFLOP/s: " + "; ".join(f"{k} {v.get('best', 0):.1f}" for k, v in rates.items()), flush=True)
    print(TABLE_HEADER, flush=True)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for encoder in args.encoders:
        estimators = {mode: modes.build_estimator(mode, encoder) for mode in args.modes}
        for frame_name in args.frames:
            for size in args.sizes:
                rows += bench_configuration(encoder, frame_name, size, estimators, args, rates)
        del estimators
    machine["load_average_1min_end"] = os.getloadavg()[0]
    machine["wall_s"] = time.perf_counter() - started
    try:
        import transformers
        machine["transformers"] = transformers.__version__
    except ImportError:
        pass
    print(f"load average (1 min): {machine['load_average_1min_start']:.2f} at start, "
          f"{machine['load_average_1min_end']:.2f} at end; {machine['wall_s']:.0f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "args": {k: (str(v) if isinstance(v, pathlib.Path) else v)
                                                                 for k, v in vars(args).items()},
                                    "rows": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Model latency on this machine: vits on a 640x480 frame at input 518, exact-fp32 / fast-fp32 / fast-bf16,
plus forward-only timings (ours fp32, bf16 autocast, bf16 cast weights, transformers' DepthAnythingForDepthEstimation
on the same weights and input) -- wall and process-CPU seconds -- a table on stdout and JSON in
benchmarks/results/bench_model.json.

With --accuracy it also runs every parity fixture (test/fixtures/parity and ../shared/reference/cases) in
exact-fp32, fast-fp32 and fast-bf16 and reports the error against the official outputs.

Not a test: run it by hand, e.g. `PYTHONPATH=. python benchmarks/bench_model.py`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dav2_ros.engines.torch_runtime.device import cpu_has_native_bf16  # noqa: E402
from dav2_ros.engines.estimator import DepthEstimator  # noqa: E402
from modes import official_to_hf  # noqa: E402  (shared with bench_pipeline)

FRAME = ROOT / "test" / "fixtures" / "parity" / "tum_metric20_vits_518.npz"  # a 640x480 TUM RGB-D frame
CASE_DIRS = [ROOT / "test" / "fixtures" / "parity", ROOT.parent / "shared" / "reference" / "cases"]


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo (or platform's guess)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


CPU_TIMES: list[float] = []  # process CPU seconds of the calls timed last (robust to other processes' load)


def timed(fn: Callable[[], object], runs: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of `runs` calls after `warmup` untimed ones; their CPU seconds go to CPU_TIMES."""
    for _ in range(warmup):
        fn()
    times = []
    CPU_TIMES.clear()
    for _ in range(runs):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        CPU_TIMES.append(time.process_time() - cpu_start)
    return times


def end_to_end(image: np.ndarray, input_size: int, runs: int, bf16_runs: int) -> list[dict]:
    """DepthEstimator.infer on the frame: total and per-phase medians for each mode."""
    rows = []
    for preprocess, precision, n in (("exact", "fp32", runs), ("fast", "fp32", runs), ("fast", "bf16", bf16_runs)):
        est = DepthEstimator.random(encoder="vits", model_type="metric", max_depth=20.0, device="cpu",
                                    precision=precision, preprocess=preprocess)
        phases: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": []}

        def call() -> None:
            est.infer(image, input_size, "bgr")
            for key in phases:
                phases[key].append(est.last_timings[key])

        times = timed(call, n)
        rows.append({"name": f"{preprocess}-{precision}", "kind": "infer (end to end)", "runs": n,
                     "median_s": statistics.median(times), "min_s": min(times),
                     "cpu_median_s": statistics.median(CPU_TIMES),
                     **{f"{k}_median_s": statistics.median(v[-n:]) for k, v in phases.items()}})
        print(f"  {rows[-1]['name']}: {rows[-1]['median_s']:.3f} s", flush=True)
    return rows


def forward_only(image: np.ndarray, input_size: int, runs: int, bf16_runs: int, with_transformers: bool) -> list[dict]:
    """The network alone on the same normalized input tensor: ours fp32 / bf16 autocast / bf16 weights, and
    transformers' implementation fed the same stand-in weights (converted to its layout)."""
    est = DepthEstimator.random(encoder="vits", model_type="metric", max_depth=20.0, device="cpu",
                                precision="fp32", preprocess="exact")
    x = est._inputs([image], input_size, "bgr")  # the exact-mode network input, (1, 3, 518, 686)
    model = est.model
    model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
    rows = []

    def add(name: str, fn: Callable[[], object], n: int) -> None:
        with torch.inference_mode():
            times = timed(fn, n)
        rows.append({"name": name, "kind": "forward only", "runs": n, "median_s": statistics.median(times),
                     "min_s": min(times), "cpu_median_s": statistics.median(CPU_TIMES)})
        print(f"  {name}: {rows[-1]['median_s']:.3f} s", flush=True)

    add("ours fp32", lambda: model(x), runs)

    def autocast_forward() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x)

    add("ours bf16 autocast", autocast_forward, bf16_runs)
    x_bf16 = x.to(torch.bfloat16)
    add("ours bf16 cast weights", lambda: model_bf16(x_bf16), bf16_runs)
    if with_transformers:
        hf = transformers_model(model)
        if hf is not None:
            add(f"transformers {hf[1]} fp32 ({hf[2]} attention)", lambda: hf[0](pixel_values=x), runs)
    return rows


def transformers_model(model: torch.nn.Module) -> tuple[torch.nn.Module, str, str] | None:
    """(transformers' DepthAnythingForDepthEstimation (vits metric) holding `model`'s weights, transformers version,
    attention implementation), or None when transformers is not installed."""
    try:
        import transformers
    except ImportError:
        print("  transformers not installed: its row is skipped", flush=True)
        return None
    backbone = transformers.Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, image_size=518,
                                         patch_size=14, out_indices=[3, 6, 9, 12], apply_layernorm=True,
                                         reshape_hidden_states=False)
    config = transformers.DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=384, patch_size=14,
                                              neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64,
                                              depth_estimation_type="metric", max_depth=20)
    hf = transformers.DepthAnythingForDepthEstimation(config).eval()
    hf.load_state_dict(official_to_hf(model.state_dict(), list(hf.state_dict())), strict=True)
    return hf, transformers.__version__, str(getattr(hf.backbone.config, "_attn_implementation", "default"))


def accuracy() -> list[dict]:
    """Every parity fixture in exact-fp32, fast-fp32 and fast-bf16: max and mean error relative to the official."""
    seen, rows = set(), []
    estimators: dict[tuple, DepthEstimator] = {}
    for folder in CASE_DIRS:
        for path in sorted(folder.glob("*.npz")):
            if path.name in seen:
                continue
            seen.add(path.name)
            with np.load(path) as z:
                image, ref = z["image_bgr"], z["depth"]
                encoder, input_size, max_depth = str(z["encoder"]), int(z["input_size"]), float(z["max_depth"])
            for preprocess, precision in (("exact", "fp32"), ("fast", "fp32"), ("fast", "bf16")):
                key = (encoder, max_depth, preprocess, precision)
                if key not in estimators:
                    estimators[key] = DepthEstimator.random(
                        encoder=encoder, model_type="metric" if max_depth > 0 else "relative",
                        max_depth=max_depth or 20.0, device="cpu", precision=precision, preprocess=preprocess)
                depth = estimators[key].infer(image, input_size, "bgr")
                diff = np.abs(depth - ref)
                rows.append({"case": path.stem, "mode": f"{preprocess}-{precision}",
                             "max_abs_over_max_ref": float(diff.max() / np.abs(ref).max()),
                             "mean_abs_over_mean_ref": float(diff.mean() / np.abs(ref).mean())})
                r = rows[-1]
                print(f"  {r['case']:24s} {r['mode']:11s} max {r['max_abs_over_max_ref']:.2e}  "
                      f"mean {r['mean_abs_over_mean_ref']:.2e}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per fp32 variant (median reported)")
    parser.add_argument("--bf16-runs", type=int, default=2, help="timed runs per bf16 variant (slow without AMX)")
    parser.add_argument("--input-size", type=int, default=518)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--no-transformers", action="store_true", help="skip transformers' model")
    parser.add_argument("--accuracy", action="store_true", help="also measure error on every parity fixture")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "bench_model.json")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    with np.load(FRAME) as z:
        image = z["image_bgr"]
    machine = {"cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
               "native_bf16": cpu_has_native_bf16(), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "cores": os.cpu_count(), "load_average_1min": os.getloadavg()[0]}
    print(f"vits, {image.shape[1]}x{image.shape[0]} frame, input {args.input_size}; {machine}", flush=True)
    print("end to end:", flush=True)
    rows = end_to_end(image, args.input_size, args.runs, args.bf16_runs)
    print("forward only:", flush=True)
    rows += forward_only(image, args.input_size, args.runs, args.bf16_runs, not args.no_transformers)
    machine["load_average_1min_after"] = os.getloadavg()[0]

    print("\n| variant | measured | wall median s | wall min s | CPU median s | runs |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['kind']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['cpu_median_s']:.3f} "
              f"| {r['runs']} |")
    result = {"machine": machine, "input_size": args.input_size, "frame": [int(image.shape[0]), int(image.shape[1])],
              "latency": rows}
    if args.accuracy:
        print("\naccuracy against the official outputs:", flush=True)
        result["accuracy"] = accuracy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

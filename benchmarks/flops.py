#!/usr/bin/env python3
"""How much work Depth Anything V2 is and how fast this machine multiplies matrices: the hardware limit.

* `model_flops`: FLOPs of one forward pass (torch's FlopCounterMode on the meta device, so nothing runs),
  split into the ViT's Linear layers, attention (QK^T and PV) and the convolutions.
* `measure_matmul`: GFLOP/s of this machine's GEMMs in fp32, bf16 and int8 (fbgemm dynamic quantized Linear,
  the kernel `precision="int8"` uses) at the ViT-S MLP shape and a square 2048 one.
* `floor_seconds`: the time a forward pass would take if every FLOP ran at the measured GEMM rate of the dtype
  that mode uses for it -- the "hardware limit" that bench_pipeline.py reports each mode against.

Run by hand: `PYTHONPATH=. python benchmarks/flops.py` (table on stdout, JSON in benchmarks/results/flops.json).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dav2_ros.model.config import ModelConfig  # noqa: E402
from dav2_ros.model.depth_anything_v2 import DepthAnythingV2  # noqa: E402
from dav2_ros.engines.preprocess import network_size  # noqa: E402

#: Which op class runs in which dtype, per benchmark mode (the rest of the work is elementwise: not counted).
MODE_DTYPES: dict[str, dict[str, str]] = {
    "fp32": {"linear": "fp32", "attention": "fp32", "conv": "fp32"},
    "bf16": {"linear": "bf16", "attention": "bf16", "conv": "bf16"},
    "int8": {"linear": "int8", "attention": "fp32", "conv": "fp32"},
    "fp16": {"linear": "fp16", "attention": "fp16", "conv": "fp16"},
}
_OP_CLASSES = {"aten.addmm": "linear", "aten.mm": "linear", "aten.bmm": "attention",
               "aten._scaled_dot_product_flash_attention_for_cpu": "attention",
               "aten._scaled_dot_product_efficient_attention": "attention",
               "aten._scaled_dot_product_flash_attention": "attention", "aten.convolution": "conv",
               "aten._convolution": "conv"}


def model_flops(encoder: str, height: int, width: int) -> dict[str, float]:
    """FLOPs (multiply-add = 2) of one forward pass at network input `height` x `width` (multiples of 14).

    Returns: {"linear", "attention", "conv", "total"} in FLOPs.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = DepthAnythingV2(ModelConfig(encoder, "metric"))
        x = torch.empty(1, 3, height, width)
        with FlopCounterMode(display=False) as counter:
            model(x)
    split = {"linear": 0.0, "attention": 0.0, "conv": 0.0}
    for op, flops in counter.get_flop_counts()["Global"].items():
        split[_OP_CLASSES.get(str(op), "conv" if "conv" in str(op) else "linear")] += float(flops)
    split["total"] = float(counter.get_total_flops())
    return split


def frame_flops(encoder: str, frame_height: int, frame_width: int, input_size: int) -> dict[str, float]:
    """`model_flops` at the network size the estimator picks for a frame (aspect kept, multiples of 14)."""
    rows, cols = network_size(frame_height, frame_width, input_size)
    return {**model_flops(encoder, rows, cols), "net_height": rows, "net_width": cols}


def _rate(fn: Callable[[], object], flops: float, min_seconds: float) -> float:
    """Median GFLOP/s of `fn` over at least `min_seconds` (after two warm-up calls)."""
    fn()
    fn()
    rates, start = [], time.perf_counter()
    while time.perf_counter() - start < min_seconds or len(rates) < 5:
        t = time.perf_counter()
        fn()
        rates.append(flops / (time.perf_counter() - t) / 1e9)
    return statistics.median(rates)


def measure_matmul(threads: int | None = None, min_seconds: float = 1.0) -> dict[str, dict[str, float]]:
    """GEMM GFLOP/s of this machine: {dtype: {shape name: rate, "best": max}} for fp32, bf16 and int8.

    int8 is torch's dynamic quantized Linear (fbgemm on x86), the same kernel as `Int8DynamicLinear`, fed fp32
    and returning fp32 (the per-call quantization of the input is included, as in the model).
    """
    from dav2_ros.engines.torch_runtime.quantize import Int8DynamicLinear, int8_available

    if threads:
        torch.set_num_threads(threads)
    shapes = {"vits_mlp_1814x384x1536": (1814, 384, 1536), "square_2048": (2048, 2048, 2048)}
    out: dict[str, dict[str, float]] = {"fp32": {}, "bf16": {}, "int8": {}}
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for name, (m, k, n) in shapes.items():
            flops = 2.0 * m * k * n
            a = torch.randn(m, k, generator=gen)
            layer = torch.nn.Linear(k, n)
            out["fp32"][name] = _rate(lambda: layer(a), flops, min_seconds)
            a16, layer16 = a.bfloat16(), torch.nn.Linear(k, n).bfloat16()
            out["bf16"][name] = _rate(lambda: layer16(a16), flops, min_seconds)
            if int8_available():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    q = Int8DynamicLinear(layer)
                out["int8"][name] = _rate(lambda: q(a), flops, min_seconds)
    for rates in out.values():
        if rates:
            rates["best"] = max(rates.values())
    return out


def floor_seconds(flops: dict[str, float], rates: dict[str, dict[str, float]], mode_dtype: str) -> float:
    """Seconds for the counted FLOPs of one pass at the measured best GEMM rate of each op class's dtype."""
    total = 0.0
    for op_class, dtype in MODE_DTYPES[mode_dtype].items():
        rate = rates.get(dtype, {}).get("best") or rates["fp32"]["best"]
        total += flops[op_class] / (rate * 1e9)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads for the GEMM timing (0: default)")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum timing per GEMM")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "flops.json")
    args = parser.parse_args()

    rows = []
    print("| encoder | frame | input_size | network input | linear GFLOP | attention GFLOP | conv GFLOP "
          "| total GFLOP |")
    print("|---|---|---|---|---|---|---|---|")
    for encoder in ("vits", "vitb"):
        for frame in ((480, 640), (720, 1280)):
            for size in (266, 364, 518):
                f = frame_flops(encoder, frame[0], frame[1], size)
                rows.append({"encoder": encoder, "frame": list(frame), "input_size": size, **f})
                print(f"| {encoder} | {frame[1]}x{frame[0]} | {size} | {f['net_width']}x{f['net_height']} | "
                      f"{f['linear'] / 1e9:.1f} | {f['attention'] / 1e9:.1f} | {f['conv'] / 1e9:.1f} | "
                      f"{f['total'] / 1e9:.1f} |", flush=True)
    load_before = os.getloadavg()[0]
    rates = measure_matmul(args.threads or None, args.seconds)
    print(f"\nGEMM GFLOP/s with {torch.get_num_threads()} threads ({torch.backends.cpu.get_cpu_capability()}; "
          f"load {load_before:.2f} -> {os.getloadavg()[0]:.2f}):")
    for dtype, by_shape in rates.items():
        print(f"  {dtype}: " + ", ".join(f"{k} {v:.1f}" for k, v in by_shape.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"flops": rows, "gemm_gflops": rates, "threads": torch.get_num_threads(),
                                    "load_average_1min": [load_before, os.getloadavg()[0]]}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

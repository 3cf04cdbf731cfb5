#!/usr/bin/env python3
"""Plot end-to-end latency against input size, one line per mode, one panel per (encoder, frame), from the JSON
that bench_pipeline.py writes. Needs matplotlib (`pip install matplotlib`).

    PYTHONPATH=. python benchmarks/plot_latency.py [benchmarks/results/bench_pipeline.json] [--out latency.png]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_IN = ROOT / "benchmarks" / "results" / "bench_pipeline.json"
MODE_STYLE = {"exact-fp32": ("tab:blue", "o"), "fast-fp32": ("tab:cyan", "s"), "fast-bf16": ("tab:purple", "v"),
              "fast-int8": ("tab:green", "D"), "transformers-fp32": ("tab:red", "x")}


def plot(results: dict, out: pathlib.Path) -> None:
    """One panel per (encoder, frame): e2e median (p90 as error bar) in seconds vs input size, per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    panels = sorted({(r["encoder"], r["frame"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False, sharey=True)
    for ax, (encoder, frame) in zip(axes[0], panels):
        for mode in MODE_STYLE:
            points = sorted((r["input_size"], r["end_to_end_median_s"], r["end_to_end_p90_s"]) for r in rows
                            if r["encoder"] == encoder and r["frame"] == frame and r["mode"] == mode)
            if not points:
                continue
            sizes, medians, p90s = zip(*points)
            color, marker = MODE_STYLE[mode]
            ax.errorbar(sizes, medians, yerr=[[0] * len(sizes), [p - m for m, p in zip(medians, p90s)]],
                        color=color, marker=marker, label=mode, capsize=3)
        ax.set_title(f"{encoder}, {frame} frame")
        ax.set_xlabel("input_size (shorter side, px)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("end-to-end latency, s (median; bar to p90)")
    axes[0][-1].legend(fontsize=8)
    machine = results["machine"]
    fig.suptitle(f"{machine['cpu']} ({machine['cores']} cores, {machine['cpu_capability']}), torch {machine['torch']}, "
                 f"load {machine['load_average_1min_start']:.1f}-{machine['load_average_1min_end']:.1f}", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", type=pathlib.Path, default=DEFAULT_IN)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "latency.png")
    args = parser.parse_args()
    plot(json.loads(args.results.read_text()), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

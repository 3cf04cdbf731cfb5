#!/usr/bin/env python3
"""CPU thread settings side by side: torch threads (1 .. cores) x OpenMP wait policy (active = the OpenMP default,
threads spin at barriers; passive = they sleep). Both are fixed when a process starts, so every setting runs
in its own subprocess, and the settings take turns round by round so that machine load hits them alike.

Why it matters: on a robot computer the depth node shares its few cores with drivers and other nodes. With as
many spinning OpenMP threads as cores, every parallel region waits for the thread the OS descheduled.

    PYTHONPATH=. python benchmarks/bench_threads.py [--mode fast-int8] [--input-size 518] [--rounds 3]

Prints a markdown table and writes benchmarks/results/bench_threads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FRAME = ROOT / "test" / "fixtures" / "parity" / "tum_vits_308.npz"  # a real 640x480 frame

WORKER = r"""
import json, sys, time
import numpy as np, torch
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
torch.set_num_threads({threads})
import modes
est = modes.build_estimator({mode!r}, "vits")
with np.load({frame!r}) as z:
    image = z["image_bgr"]
est.infer(image, {size}, "bgr")
times, cpu = [], []
for _ in range({frames}):
    t, c = time.perf_counter(), time.process_time()
    est.infer(image, {size}, "bgr")
    times.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
print(json.dumps({{"times": times, "cpu": cpu}}))
"""


def run_setting(threads: int, policy: str, args: argparse.Namespace) -> dict:
    """One subprocess with these settings; its per-frame wall and CPU seconds."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    code = WORKER.format(root=str(ROOT), bench=str(ROOT / "benchmarks"), threads=threads, mode=args.mode,
                         frame=str(FRAME), size=args.input_size, frames=args.frames)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default="fast-int8")
    parser.add_argument("--input-size", type=int, default=518)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=3, help="timed frames per subprocess")
    parser.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts (default: 1 and cores)")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "bench_threads.json")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    settings = [(t, p) for t in sorted(set(args.threads or {1, cores})) for p in ("active", "passive")]
    results: dict[str, dict[str, list[float]]] = {f"{t}/{p}": {"times": [], "cpu": []} for t, p in settings}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for threads, policy in settings:
            sample = run_setting(threads, policy, args)
            for key in ("times", "cpu"):
                results[f"{threads}/{policy}"][key] += sample[key]
        load.append(os.getloadavg()[0])
    print(f"{args.mode}, vits, input {args.input_size}, 640x480; {cores} cores; load average (1 min) during the run: "
          f"{min(load):.2f} .. {max(load):.2f}")
    print("| torch threads | OpenMP wait policy | median s | p90 s | min s | CPU s per frame | frames |\n|"
          + "---|" * 7)
    rows = []
    for key, values in results.items():
        threads, policy = key.split("/")
        times = values["times"]
        row = {"threads": int(threads), "wait_policy": policy, "median_s": statistics.median(times),
               "p90_s": sorted(times)[int(0.9 * (len(times) - 1))], "min_s": min(times),
               "cpu_median_s": statistics.median(values["cpu"]), "frames": len(times)}
        rows.append(row)
        print(f"| {threads} | {policy} | {row['median_s']:.3f} | {row['p90_s']:.3f} | {row['min_s']:.3f} | "
              f"{row['cpu_median_s']:.3f} | {row['frames']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"mode": args.mode, "input_size": args.input_size, "load_average_1min": load,
                                    "rows": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Raw frames from a reliable publisher that reach the depth node, per `qos.input_reliability`, on this machine:
the best-effort default against `reliable`, interleaved (run after run) so both see the same load.

Counts are the node's own (`frames_in` in /diagnostics); see test/support/reliability_probe.py for the set-up.

    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=47 .venv/bin/python test/campaigns/bench_input_reliability.py
    ... --sizes 640x480 1280x720 --frames 100 --rate 10 --repeats 2

Prints a markdown table and writes JSON to benchmarks/results/bench_input_reliability.json (git-ignored).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
sys.path[:0] = [str(ROOT), str(ROOT / "test" / "support")]

from reliability_probe import count_arrivals  # noqa: E402
from machine_facts import cpu_model  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1280x720"], help="WIDTHxHEIGHT of the raw frames")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="publishing rate in Hz")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as weights_dir:  # empty: the node runs on stand-in weights
        for size in args.sizes:
            width, height = (int(v) for v in size.split("x"))
            for _ in range(args.repeats):
                for reliability in ("best_effort", "reliable"):
                    arrivals = count_arrivals(reliability, pathlib.Path(weights_dir), frames=args.frames,
                                              width=width, height=height, rate_hz=args.rate)
                    rows.append(dataclasses.asdict(arrivals))
                    print(f"{size} {reliability}: {arrivals.frames_in}/{arrivals.sent}", flush=True)
    load = pathlib.Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nCPU: {cpu_model()}; load average {' '.join(load)}; {args.rate:g} Hz reliable publisher, Fast DDS, "
          "loopback\n")
    print("| frames | qos.input_reliability | reached the node |\n|---|---|---|")
    for row in rows:
        print(f"| {row['width']}x{row['height']} bgr8 | {row['reliability']} | {row['frames_in']} of {row['sent']} |")
    out = ROOT / "benchmarks" / "results" / "bench_input_reliability.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu": cpu_model(), "loadavg": load, "rate_hz": args.rate, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

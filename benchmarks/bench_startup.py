"""Node start-up: seconds from starting `depth_node` to its "model ready" line, per engine, with a cold and a
warm OpenVINO cache (converted models + compiled blobs), against backend torch.

    PYTHONPATH=. python benchmarks/bench_startup.py [--encoder vits] [--rounds 2]

Each start is a fresh process (python -m dav2_ros.node.depth_node, random weights, the default 640x480 warm-up at
input_size 518); "cold" starts with an empty engine cache folder, "warm" reuses the folder of the cold start.
Rounds are interleaved (torch, cold, warm, torch, cold, warm, ...). Writes benchmarks/results/bench_startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
READY = re.compile(r"model ready")


def start_seconds(backend: str, encoder: str, cache: pathlib.Path, timeout: float) -> tuple[float, str]:
    """Seconds to "model ready" for one fresh node process, and its engine line."""
    env = dict(os.environ, DAV2_ENGINE_CACHE=str(cache), PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0",
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "dav2_ros.node.depth_node", "--ros-args", "-p", "allow_random_weights:=true",
           "-p", f"backend:={backend}", "-p", f"encoder:={encoder}"]
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    engine, elapsed = "", None
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "engine:" in line:
                engine = line.split("engine:", 1)[1].strip()
            if READY.search(line):
                elapsed = time.perf_counter() - start
                break
            if time.perf_counter() - start > timeout:
                break
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    if elapsed is None:
        raise RuntimeError(f"{backend}: no 'model ready' within {timeout:.0f} s")
    return elapsed, engine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="vits", choices=("vits", "vitb"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "bench_startup.json")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    times: dict[str, list[float]] = {"torch": [], "openvino cold cache": [], "openvino warm cache": []}
    engines: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="dav2_startup_") as folder:
        for round_ in range(args.rounds):
            cache = pathlib.Path(folder) / f"round{round_}"
            for name, backend in (("torch", "torch"), ("openvino cold cache", "openvino"),
                                  ("openvino warm cache", "openvino")):
                seconds, engines[name] = start_seconds(backend, args.encoder, cache, args.timeout)
                times[name].append(seconds)
                print(f"round {round_}: {name}: {seconds:.1f} s", flush=True)
    load_end = os.getloadavg()[0]
    print(f"\n| start-up ({args.encoder}, 640x480 warm-up at 518) | median s | runs |\n|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.1f} | {len(values)} |")
    print(f"load average (1 min): {load_start:.2f} at start, {load_end:.2f} at end; cpu: {os.cpu_count()} cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"encoder": args.encoder, "seconds": times, "engines": engines,
                                    "load_average_1min": [load_start, load_end]}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

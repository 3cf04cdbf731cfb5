"""Many bags: dav2_bags (1 and 2 local workers, and Ray on this machine when installed) against a plain loop that
runs `bag_to_depth` once per bag (a process and a model load per bag).

    PYTHONPATH=. python benchmarks/bench_fleet.py [--bags 6] [--frames 10] [--input-size 70] [--backend auto]

The bags are streams of the bundled TUM RGB-D frame (640x480 rgb8 + CameraInfo, new stamps per frame); random
weights (vits). Every configuration is a fresh process, timed from its start to its exit: bags/s and frames/s,
and where the time goes -- per-bag overhead (process start, imports, model load and warm-up) against the frames.
Writes benchmarks/results/bench_fleet.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rosbags.rosbag2 import Reader, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
TUM = ROOT / "test" / "data" / "bags" / "tum_rgbd"
TOPICS = ("/camera/color/image_raw", "/camera/color/camera_info")


def cpu() -> dict[str, object]:
    """CPU model name, cores, avx512_bf16, load average."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout if shutil.which("lscpu") else ""
    name = re.search(r"Model name:\s*(.*)", text)
    family = re.search(r"CPU family:\s*(.*)", text)
    return {"name": name.group(1).strip() if name else "unknown", "family": family.group(1).strip() if family else "",
            "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in text, "loadavg": os.getloadavg()}


def make_bags(folder: pathlib.Path, bags: int, frames: int) -> list[pathlib.Path]:
    """`bags` rosbag2 folders of `frames` frames each (the TUM frame and its CameraInfo, restamped 0.1 s apart)."""
    with Reader(TUM) as reader:
        connections = [c for c in reader.connections if c.topic in TOPICS]
        messages = [(c, t, TYPESTORE.deserialize_cdr(raw, c.msgtype)) for c, t, raw in reader.messages(connections)]
    paths = []
    for b in range(bags):
        path = folder / f"run_{b}"
        with Writer(path, version=8) as writer:
            conns = {}
            for i in range(frames):
                for connection, stamp, msg in messages:
                    shift = (b * 1000 + i) * 100_000_000
                    header = msg.header
                    sec_ns = header.stamp.sec * 10**9 + header.stamp.nanosec + shift
                    stamp_msg = type(header.stamp)(sec=sec_ns // 10**9, nanosec=sec_ns % 10**9)
                    msg = dataclasses.replace(msg, header=dataclasses.replace(header, stamp=stamp_msg))
                    if connection.topic not in conns:
                        conns[connection.topic] = writer.add_connection(connection.topic, connection.msgtype,
                                                                        typestore=TYPESTORE)
                    writer.write(conns[connection.topic], stamp + shift,
                                 TYPESTORE.serialize_cdr(msg, connection.msgtype))
        paths.append(path)
    return paths


def timed(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of a command (which must succeed)."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])}... exit {result.returncode}: {result.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bags", type=int, default=6)
    parser.add_argument("--frames", type=int, default=10, help="frames per bag")
    parser.add_argument("--input-size", type=int, default=70)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--output", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "bench_fleet.json")
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench_fleet_"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), DAV2_ENGINE_CACHE=str(work / "engine_cache"),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", RAY_AUTH_MODE="disabled")
    (work / "no_weights").mkdir()
    common = ["--param", "allow_random_weights=true", "--param", f"weights_dir={work / 'no_weights'}",
              "--encoder", "vits", "--input-size", str(args.input_size), "--backend", args.backend,
              "--device", "cpu"]
    try:
        bags = make_bags(work / "in", args.bags, args.frames)
        frames = args.bags * args.frames
        # one untimed run fills the engine cache (OpenVINO compiles each shape once per cache)
        timed([sys.executable, "-m", "dav2_ros.offline.bag_to_depth", str(bags[0]), "-o", str(work / "warm"),
               "--no-progress", *common], env)
        rows = []

        def loop(threads: int) -> dict:
            out = work / f"loop_{threads}"
            start = time.perf_counter()
            for bag in bags:
                timed([sys.executable, "-m", "dav2_ros.offline.bag_to_depth", str(bag), "-o", str(out / bag.name),
                       "--no-progress", "--param", f"num_threads={threads}", *common], env)
            return {"config": f"loop of bag_to_depth, {threads} thread(s)", "seconds": time.perf_counter() - start}

        def fleet(workers: int, threads: int, ray: bool = False) -> dict:
            out, summary = work / f"fleet_{workers}x{threads}_{ray}", work / f"summary_{workers}x{threads}_{ray}.json"
            seconds = timed([sys.executable, "-m", "dav2_ros.offline.fleet", str(work / "in"), "-o", str(out),
                             "--workers", str(workers), "--threads", str(threads), "--no-progress", "--summary",
                             str(summary), *(["--ray", "local"] if ray else []), *common], env)
            data = json.loads(summary.read_text())
            busy = sum(r["seconds"] for r in data["results"])
            return {"config": f"dav2_bags{' --ray local' if ray else ''} {workers} worker(s) x {threads} thread(s)",
                    "seconds": seconds, "model_load_s": data["model_load_s"], "bag_seconds_mean": busy / len(bags),
                    "run_seconds": data["seconds"]}

        rows.append(loop(2))
        rows.append(fleet(1, 2))
        rows.append(fleet(1, 1))
        rows.append(fleet(2, 1))
        if not args.no_ray and importlib.util.find_spec("ray") is not None:
            rows.append(fleet(2, 1, ray=True))
        per_bag_convert = rows[1]["bag_seconds_mean"]  # frames only, one worker x 2 threads, model loaded
        for row in rows:
            row["bags_per_s"] = args.bags / row["seconds"]
            row["frames_per_s"] = frames / row["seconds"]
            # what each bag costs beyond its frames, with the 1x2 frame time as the yardstick
            row["overhead_per_bag_s"] = row["seconds"] / args.bags - per_bag_convert
        result = {"cpu": cpu(), "bags": args.bags, "frames_per_bag": args.frames, "input_size": args.input_size,
                  "backend": args.backend, "encoder": "vits", "rows": rows}
        print(f"CPU: {result['cpu']['name']} (family {result['cpu']['family']}), {result['cpu']['cores']} cores, "
              f"avx512_bf16 {result['cpu']['avx512_bf16']}, load {result['cpu']['loadavg'][0]:.2f}")
        print(f"{args.bags} bags x {args.frames} frames (640x480), vits input_size {args.input_size}, "
              f"backend {args.backend}; each bag's frames alone: {per_bag_convert:.2f} s (1 worker x 2 threads)")
        print(f"{'configuration':50s} {'wall s':>7s} {'bags/s':>7s} {'frames/s':>9s} {'overhead/bag s':>15s} "
              f"{'model load s':>13s}")
        for row in rows:
            loads = ", ".join(f"{s:.1f}" for s in row.get("model_load_s", [])) or "each bag"
            print(f"{row['config']:50s} {row['seconds']:7.1f} {row['bags_per_s']:7.3f} {row['frames_per_s']:9.2f} "
                  f"{row['overhead_per_bag_s']:15.2f} {loads:>13s}")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.output}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

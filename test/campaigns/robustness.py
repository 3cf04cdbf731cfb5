#!/usr/bin/env python3
"""Runs the long robustness scenarios against the real depth node over DDS on localhost and prints
their figures: a 30 Hz camera into a ~1 s/frame model, a burst of 200 frames, a 2,000-frame soak, a
SIGKILL + restart under a running publisher, and (through pytest) the bad-input table.

    ROS_DOMAIN_ID=32 nice python test/campaigns/robustness.py --out robustness_results

Writes <out>/robustness.json (every figure) and <out>/robustness.md (the tables). Exit code 1 when a
node crashed, printed a traceback, or a scenario broke its bounds (queue, newest-first, latency, RSS).
The figures depend on the machine: the CPU model and its load are printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Any, Callable

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[2]
SUPPORT_DIR = PROJECT_DIR / "test" / "support"

# DDS stays on this machine, in a domain of its own, before anything loads rclpy.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
sys.path[:0] = [str(PROJECT_DIR), str(SUPPORT_DIR)]

from camera_frame import Camera  # noqa: E402 -- after the DDS environment is set
from machine_facts import environment_note  # noqa: E402
from node_rig import NodeRig  # noqa: E402
from restart_scenario import RestartResult, run_restart  # noqa: E402
from stream_scenarios import StreamResult, run_burst, run_soak, run_stream  # noqa: E402

SCENARIOS = ("overload", "burst", "soak", "restart", "bad_input")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=PROJECT_DIR / "robustness_results",
                        help="folder for robustness.json and robustness.md (default: %(default)s)")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--overload-seconds", type=float, default=60.0, help="length of the 30 Hz run")
    parser.add_argument("--overload-rate", type=float, default=30.0, help="camera rate of the overload run (Hz)")
    parser.add_argument("--overload-input-size", type=int, default=266,
                        help="input_size of the overload model (vits, one CPU thread: ~1 s/frame)")
    parser.add_argument("--burst", type=int, default=200, help="frames in the burst")
    parser.add_argument("--soak-frames", type=int, default=2000, help="frames in the soak")
    parser.add_argument("--soak-rate", type=float, default=10.0, help="camera rate of the soak (Hz)")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    return args


def stream_checks(result: StreamResult, rss_growth_mb: float, rate_hz: float | None) -> list[str]:
    """The bounds a run must keep (those of test_robustness_overload/_soak); the list of those it broke."""
    broken = []
    if result.node_in != result.published + result.dropped + result.rejected:
        broken.append("frames unaccounted for (in != published + dropped + rejected)")
    if result.max_backlog > 2:
        broken.append(f"backlog {result.max_backlog} > 2 (queue not bounded)")
    if not result.stamps_increasing:
        broken.append("outputs out of order")
    if result.last_published_stamp not in result.sent_stamps[-3:]:
        broken.append("the last output is not one of the last frames sent (newest did not win)")
    if result.latency.max_ms is None or result.latency.max_ms > (2 * result.slowest_frame_s + 1.0) * 1e3:
        broken.append(f"latency max {result.latency.max_ms} ms above twice the slowest frame + 1 s")
    if rate_hz and result.waited.n and result.waited.p50_ms > 1e3 / rate_hz + 200:
        broken.append(f"frames waited {result.waited.p50_ms:.0f} ms (p50) for the model: more than a camera period")
    if result.waited.n and result.waited.max_ms > result.slowest_frame_s * 1e3 + 500:
        broken.append(f"a frame waited {result.waited.max_ms:.0f} ms for the model: longer than the slowest frame")
    if result.rss_growth_mb > rss_growth_mb:
        broken.append(f"RSS grew {result.rss_growth_mb:.1f} MB (> {rss_growth_mb:g})")
    return broken


def run_node_scenarios(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Overload and burst on one slow node, the soak on a fast one, then kill/restart."""
    def record(name: str, run: Callable[[], StreamResult], rss_growth_mb: float, rate_hz: float | None) -> None:
        print(f"[robustness] {name} ...", flush=True)
        result = run()
        entry = result.as_dict()
        entry["broken"] = stream_checks(result, rss_growth_mb, rate_hz)
        report["scenarios"][name] = entry
        print(f"[robustness] {name}: {row(entry)}", flush=True)

    if "overload" in args.only or "burst" in args.only:
        camera = Camera.tum(width=320)
        with NodeRig("/dav2_robustness_overload", {"encoder": "vits", "input_size": args.overload_input_size},
                     keep_messages=False) as rig:
            if "overload" in args.only:
                record("overload", lambda: run_stream(rig, camera, args.overload_rate, args.overload_seconds),
                       rss_growth_mb=50.0, rate_hz=args.overload_rate)
            if "burst" in args.only:
                record("burst", lambda: run_burst(rig, camera, args.burst), rss_growth_mb=100.0, rate_hz=None)
            report["logs"]["overload node"] = log_facts(rig)
    if "soak" in args.only:
        camera = Camera.tum(width=160)
        with NodeRig("/dav2_robustness_soak", {"input_size": 70}, keep_messages=False) as rig:
            record("soak", lambda: run_soak(rig, camera, args.soak_frames, args.soak_rate), rss_growth_mb=20.0,
                   rate_hz=args.soak_rate)
            report["logs"]["soak node"] = log_facts(rig)
    if "restart" in args.only:
        print("[robustness] restart ...", flush=True)
        restart: RestartResult = run_restart("/dav2_robustness_restart", Camera.tum(width=160), rate_hz=5.0,
                                             outputs_after=10)
        entry = restart.as_dict()
        entry["broken"] = [] if (restart.killed_exit_code == -9 and restart.second_node_outputs >= 10
                                 and restart.second_node_log_clean and restart.second_node_exit_code == 0) \
            else ["the restarted node did not come up cleanly"]
        report["scenarios"]["restart"] = entry
        print(f"[robustness] restart: {entry}", flush=True)


def log_facts(rig: NodeRig) -> dict[str, Any]:
    """Whether a node's log is free of tracebacks and crash reports, and how it ended."""
    code = rig.stop_node()
    log = rig.log
    markers = {m: log.count(m) for m in ("Traceback", "Segmentation fault", "core dumped", "Fatal Python error")}
    return {"exit_code": code, **markers, "warnings": log.count("[WARN]"), "errors": log.count("[ERROR]")}


def run_bad_input(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """The bad-input module through pytest; it writes its table into the output folder."""
    print("[robustness] bad input (pytest test/robustness/test_robustness_bad_input.py) ...", flush=True)
    env = dict(os.environ, DAV2_ROBUSTNESS_OUT=str(args.out), PYTHONPATH=str(PROJECT_DIR))
    started = time.monotonic()
    bad_input_tests = PROJECT_DIR / "test" / "robustness" / "test_robustness_bad_input.py"
    completed = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                str(bad_input_tests)], cwd=PROJECT_DIR, env=env,
                               capture_output=True, text=True)
    summary = (completed.stdout.strip().splitlines() or [""])[-1]
    report["scenarios"]["bad_input"] = {"pytest_exit_code": completed.returncode, "summary": summary,
                                        "seconds": round(time.monotonic() - started, 1),
                                        "broken": [] if completed.returncode == 0 else [summary]}
    table = args.out / "bad_input.json"
    if table.exists():
        report["bad_input_table"] = json.loads(table.read_text())
    print(f"[robustness] bad input: {summary}", flush=True)


def row(entry: dict[str, Any]) -> str:
    """One scenario as a markdown table row."""
    def ms(p: dict[str, Any]) -> str:
        return "n/a" if not p["n"] else f"{p['p50_ms']:.0f} / {p['p99_ms']:.0f}"

    def num(value: Any) -> str:
        return "n/a" if value is None else f"{value:.0f}"

    model = f"{entry['params'].get('encoder', 'vits')} @ {entry['params']['input_size']}"
    timeline = " / ".join(f"{mb:.0f}" for mb in entry["rss_timeline_mb"])
    return (f"| {entry['scenario']} | {model}, {entry['image_size']} | {entry['sent']} | {entry['node_in']} | "
            f"{entry['published']} | {entry['dropped']} | {entry['lost_before_node']} | {entry['max_backlog']} | "
            f"{entry['frame_s']:.2f} | {num(entry['inference_start_ms'])} -> {num(entry['inference_end_ms'])} | "
            f"{ms(entry['latency'])} | {ms(entry['latency_start'])} | {ms(entry['latency_end'])} | "
            f"{ms(entry['waited'])} | "
            f"{entry['rss_start_mb']:.1f} -> {entry['rss_end_mb']:.1f} (max {entry['rss_max_mb']:.1f}) | {timeline} | "
            f"{'ok' if not entry['broken'] else '; '.join(entry['broken'])} |")


def markdown(report: dict[str, Any]) -> str:
    """The figures as markdown tables."""
    lines = [f"Machine: {report['environment']}", "",
             "| scenario | model, image | sent | node in | published | dropped (newest wins) | lost before the node "
             "| max backlog | s/frame | model ms start -> end | latency p50 / p99 ms | first tenth | last tenth "
             "| waited for the model p50 / p99 ms | RSS MB start -> end | RSS MB at 0/10/25/50/75/100 % | bounds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("overload", "burst", "soak"):
        if name in report["scenarios"]:
            lines.append(row(report["scenarios"][name]))
    restart = report["scenarios"].get("restart")
    if restart:
        lines += ["", f"Restart: first node published {restart['first_node_outputs']} frames, SIGKILL (exit code "
                      f"{restart['killed_exit_code']}); the new node listened {restart['kill_to_listening_s']:.1f} s "
                      f"and published its first cloud {restart['kill_to_first_output_s']:.1f} s after the kill, "
                      f"{restart['second_node_outputs']} clouds by the end, log clean: "
                      f"{restart['second_node_log_clean']}, exit code on Ctrl-C {restart['second_node_exit_code']}."]
    if report.get("logs"):
        lines += ["", "| node | exit code | Traceback | Segmentation fault | warnings | errors |",
                  "|---|---|---|---|---|---|"]
        for name, facts in report["logs"].items():
            lines.append(f"| {name} | {facts['exit_code']} | {facts['Traceback']} | {facts['Segmentation fault']} | "
                         f"{facts['warnings']} | {facts['errors']} |")
    table = report.get("bad_input_table")
    if table:
        lines += ["", "| bad input | node's message (first of its kind) | counter in /diagnostics | published for "
                      "that frame | next good frame OK |", "|---|---|---|---|---|"]
        lines += [f"| {r['kind']} | {r['message'].replace('|', '/')} | {r['counter']} | {r['published']} | "
                  f"{'yes' if r['next_good_frame_ok'] else 'NO'} |" for r in table]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    arguments = {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()}
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "scenarios": {}, "logs": {},
                              "args": arguments,
                              "ros_domain_id": os.environ["ROS_DOMAIN_ID"]}
    started = time.monotonic()
    run_node_scenarios(args, report)
    if "bad_input" in args.only:
        run_bad_input(args, report)
    report["environment"] = environment_note()
    report["seconds"] = round(time.monotonic() - started, 1)
    (args.out / "robustness.json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report)
    (args.out / "robustness.md").write_text(text)
    print("\n" + text)
    broken = {name: entry["broken"] for name, entry in report["scenarios"].items() if entry.get("broken")}
    dirty = {name: facts for name, facts in report["logs"].items()
             if facts["Traceback"] or facts["Segmentation fault"] or facts["exit_code"] != 0}
    print(f"[robustness] {report['seconds']:.0f} s; results in {args.out}")
    if broken or dirty:
        print(f"[robustness] FAILED: {broken or ''} {dirty or ''}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

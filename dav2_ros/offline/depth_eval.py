"""depth_eval: predicted depth vs registered ground-truth depth in rosbags (AbsRel, RMSE, delta<1.25).

Typical use, on a bag with a registered depth camera (e.g. test/data/bags/tum_rgbd):

    bag_to_depth tum_rgbd -o tum_pred --copy-input      # prediction + the input topics in one bag
    depth_eval tum_pred --json metrics.json

The prediction topic defaults to the bag's only `.../depth/image` 32FC1 topic (bag_to_depth's
output); the ground truth to its only other depth image topic (16UC1 mm or 32FC1 m).
`--pred-bag` reads the prediction from a second bag instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import pathlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dav2_ros.offline.bag_io import IMAGE_TYPE, BagError, first_message, open_reader, ros2_typestore
from dav2_ros.offline.camera_topics import DEPTH_ENCODINGS, absolute
from dav2_ros.offline.depth_metrics import DepthMetrics, FrameEvaluation, evaluate_frame, mean_metrics
from dav2_ros.offline.depth_pairs import PairingStats, check_same_shape, pair_depth_frames

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.rosbag2 import Reader
    from rosbags.typesys.store import Typestore

PROG = "depth_eval"
PRED_SUFFIX = "/depth/image"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Compare predicted depth with registered ground-truth depth in a rosbag2: "
        "AbsRel, RMSE and delta<1.25 over valid pixels, unaligned and per-frame median-scale aligned.",
    )
    parser.add_argument("bag", type=pathlib.Path, help="bag with the ground-truth depth (and the prediction, "
                        "unless --pred-bag is given)")
    parser.add_argument("--pred-bag", type=pathlib.Path, help="bag with the predicted depth (default: BAG)")
    parser.add_argument("--pred-topic",
                        help=f"predicted depth topic, 32FC1 meters (default: the only '*{PRED_SUFFIX}')")
    parser.add_argument("--gt-topic", help="ground-truth depth topic, 16UC1 mm or 32FC1 m (default: the only other "
                        "depth image topic)")
    parser.add_argument("--max-dt", type=float, default=0.02,
                        help="largest header-stamp difference in seconds between paired frames (default 0.02)")
    parser.add_argument("--min-depth", type=float, default=0.0, help="ignore ground truth at or below this (m)")
    parser.add_argument("--max-depth", type=float, default=math.inf, help="ignore ground truth above this (m)")
    parser.add_argument("--json", type=pathlib.Path, dest="json_path", help="also write the results to this JSON file")
    return parser


def _depth_topics(reader: Reader, typestore: Typestore) -> list[Connection]:
    """Image connections whose first message has a depth encoding."""
    found = []
    for conn in reader.connections:
        if conn.msgtype == IMAGE_TYPE and conn.msgcount > 0:
            msg = first_message(reader, conn, typestore)
            if msg is not None and str(getattr(msg, "encoding", "")).lower() in DEPTH_ENCODINGS:
                found.append(conn)
    return found


def _pick(candidates: list[Connection], requested: str | None, role: str, bag: pathlib.Path, flag: str) -> Connection:
    """The requested connection, or the only candidate; BagError listing candidates otherwise."""
    names = ", ".join(c.topic for c in candidates) or "none"
    if requested is not None:
        chosen = next((c for c in candidates if absolute(c.topic) == absolute(requested)), None)
        if chosen is None:
            raise BagError(f"{role} topic {requested} is not a depth image topic of {bag} (depth topics: {names})")
        return chosen
    if len(candidates) != 1:
        problem = "no" if not candidates else "several"
        raise BagError(f"{problem} {role} topics in {bag} (candidates: {names}); choose one with {flag}")
    return candidates[0]


def _row(name: str, metrics: DepthMetrics) -> str:
    """One table row."""
    return f"{name:<14}{metrics.abs_rel:>10.4f}{metrics.rmse:>11.4f}{metrics.delta1:>13.4f}"


def format_table(frames: list[FrameEvaluation], unaligned: DepthMetrics, aligned: DepthMetrics) -> str:
    """The printed result: pixel coverage and one row per alignment."""
    valid = sum(f.valid_pixels for f in frames)
    total = sum(f.total_pixels for f in frames)
    coverage = 100.0 * valid / total if total else 0.0
    return "\n".join([
        f"{PROG}: {len(frames)} frame(s), {valid} valid pixels ({coverage:.1f} % of {total}); "
        "metrics are per-frame means",
        f"{'alignment':<14}{'AbsRel':>10}{'RMSE [m]':>11}{'delta<1.25':>13}",
        _row("none", unaligned),
        _row("median-scale", aligned),
    ])


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Read, pair and score the frames; the results as a JSON-ready dict."""
    typestore = ros2_typestore()
    pred_bag = args.pred_bag or args.bag
    # The same topic as prediction and ground truth (a plumbing check) needs two independent readers.
    same_topic = args.pred_topic is not None and args.gt_topic is not None and (
        absolute(args.pred_topic) == absolute(args.gt_topic))
    with contextlib.ExitStack() as stack:
        gt_reader = stack.enter_context(contextlib.closing(open_reader(args.bag)))
        pred_reader = gt_reader
        if args.pred_bag is not None or same_topic:
            pred_reader = stack.enter_context(contextlib.closing(open_reader(pred_bag)))
        pred_depth = _depth_topics(pred_reader, typestore)
        if args.pred_topic is None:
            pred_depth = [c for c in pred_depth if absolute(c.topic).endswith(PRED_SUFFIX)]
        pred_conn = _pick(pred_depth, args.pred_topic, "prediction", pred_bag,
                          f"--pred-topic (bag_to_depth writes '<ns>{PRED_SUFFIX}')")
        gt_depth = [c for c in _depth_topics(gt_reader, typestore)
                    if args.gt_topic is not None
                    or not (absolute(c.topic).endswith(PRED_SUFFIX) or absolute(c.topic) == absolute(pred_conn.topic))]
        gt_conn = _pick(gt_depth, args.gt_topic, "ground-truth", args.bag, "--gt-topic")
        stats = PairingStats()
        frames: list[FrameEvaluation] = []
        per_frame: list[dict[str, Any]] = []
        pairs = pair_depth_frames((pred_reader, pred_conn), (gt_reader, gt_conn), typestore,
                                  round(args.max_dt * 1e9), stats)
        for pair in pairs:
            check_same_shape(pair)
            result = evaluate_frame(pair.pred, pair.gt, args.min_depth, args.max_depth)
            frames.append(result)
            per_frame.append({"stamp_ns": pair.stamp_ns, "gt_stamp_ns": pair.gt_stamp_ns,
                              "valid_pixels": result.valid_pixels, "scale": result.scale,
                              "unaligned": vars(result.unaligned), "median_aligned": vars(result.aligned)})
    if not frames:
        raise BagError(
            f"no prediction frame of {pred_conn.topic} has a ground-truth frame on {gt_conn.topic} within "
            f"{args.max_dt} s ({stats.unmatched_predictions} unmatched, unreadable: {dict(stats.unreadable) or 'none'})"
        )
    return {
        "prediction": {"bag": str(pred_bag), "topic": pred_conn.topic},
        "ground_truth": {"bag": str(args.bag), "topic": gt_conn.topic},
        "frames": len(frames),
        "unmatched_predictions": stats.unmatched_predictions,
        "unreadable": dict(stats.unreadable),
        "valid_pixels": sum(f.valid_pixels for f in frames),
        "total_pixels": sum(f.total_pixels for f in frames),
        "unaligned": vars(mean_metrics([f.unaligned for f in frames])),
        "median_aligned": vars(mean_metrics([f.aligned for f in frames])),
        "per_frame": per_frame,
        "_evaluations": frames,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `depth_eval` console script; exit 0 on success, 1 with one line on error."""
    args = build_parser().parse_args(argv)
    try:
        results = evaluate(args)
    except BagError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    frames = results.pop("_evaluations")
    print(format_table(frames, DepthMetrics(**results["unaligned"]), DepthMetrics(**results["median_aligned"])))
    print(f"prediction {results['prediction']['topic']} vs ground truth {results['ground_truth']['topic']}")
    if results["unmatched_predictions"] or results["unreadable"]:
        print(f"skipped: {results['unmatched_predictions']} predictions without ground truth within {args.max_dt} s, "
              f"unreadable: {results['unreadable'] or 'none'}")
    if args.json_path is not None:
        args.json_path.write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
        print(f"results written to {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

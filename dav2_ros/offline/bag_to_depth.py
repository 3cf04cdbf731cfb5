"""bag_to_depth: run Depth Anything V2 on every camera frame of a rosbag2 and write the depth outputs.

    bag_to_depth INPUT [-o OUTPUT] [--image-topic T] [--info-topic T] [--sparse-topic T] [--copy-input] [--colored]
                 [--params-file config/depth.yaml] [--encoder vits] [--input-size 518] ...

Reads MCAP or SQLite3 bags (folder or single file) with `rosbags`, writes a new rosbag2 (MCAP, or
--storage sqlite3) holding `<ns>/depth/image`, `<ns>/depth/camera_info`, `<ns>/points` (and
`<ns>/depth/colored` with --colored, `<ns>/depth/relative` for relative models) with the input
image's header and bag timestamp, `<ns>` being the camera's namespace (or --output-ns).
Exit codes: 0 done, 1 error (one line, no traceback), 130 interrupted (the output bag is valid).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import pathlib
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tqdm import tqdm

from dav2_ros.command_line import run_command
from dav2_ros.engines.registry import BACKEND_CHOICES
from dav2_ros.model.config import PRECISION_CHOICES, PREPROCESS_CHOICES
from dav2_ros.pipeline.builders import (StartupError, build_estimator, build_processor, describe_estimator,
                                        prepare_estimator, warm_up, warn_unusable)
from dav2_ros.pipeline.camera import SparseTrack
from dav2_ros.pipeline.processing import FrameProcessor
from dav2_ros.pipeline.settings import NodeSettings, SettingsError
from dav2_ros.offline.bag_frames import FrameSource
from dav2_ros.offline.bag_io import BagError, open_reader, ros2_typestore
from dav2_ros.offline.camera_topics import select_camera
from dav2_ros.offline.converter import BagConverter, OutputTopics
from dav2_ros.offline.output_bag import OutputBag, prepare_output
from dav2_ros.offline.run_summary import RunStats, format_summary
from dav2_ros.offline.sparse_topic import select_sparse
from dav2_ros.offline.tool_settings import default_params_file, load_settings
from dav2_ros.pipeline.sparse_alignment import SparseAligner, SparseOptions, SparseRejected

# bag_to_depth has no tf2 (no live transform tree); a cloud must be in the camera's optical frame.
NO_TRANSFORM = "bag_to_depth cannot transform clouds (no tf2 tree offline): record or convert it in the camera frame"

PROG = "bag_to_depth"
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
LOG = logging.getLogger(PROG)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Run Depth Anything V2 on every camera frame of a rosbag2 (MCAP or SQLite3) and write a new "
        "bag with depth/image, depth/camera_info and points (the live node's topics and layouts).",
    )
    p.add_argument("input", type=pathlib.Path, help="input bag: a rosbag2 folder, or a .mcap / .db3 file")
    p.add_argument("-o", "--output", type=pathlib.Path,
                   help="output bag folder (default: INPUT_depth next to the input)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output bag")
    p.add_argument("--summary-json", type=pathlib.Path, help="also write the closing summary as JSON to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_conversion_options(p)
    return p


def add_conversion_options(p: argparse.ArgumentParser) -> None:
    """The options that decide what one bag's output holds (topics, storage, model): bag_to_depth's, and
    dav2_bags' for every bag of a batch (`dav2_ros.offline.bag_batch`)."""
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="output storage (default mcap)")
    p.add_argument("--image-topic", help="camera topic, sensor_msgs/Image or CompressedImage (default: the only one)")
    p.add_argument("--info-topic", help="CameraInfo topic (default: <camera ns>/camera_info, else the only one)")
    p.add_argument("--sparse-topic", help="sparse depth for a per-frame metric scale fit: a registered depth Image "
                   "(32FC1 m / 16UC1 mm) or a PointCloud2 in the camera frame (default with sparse.input set: "
                   "<camera ns>/sparse_depth or sparse_points)")
    p.add_argument("--output-ns", help="namespace of the output topics (default: the camera's, e.g. /camera)")
    p.add_argument("--copy-input", action="store_true", help="also copy every input message to the output")
    p.add_argument("--colored", action="store_true", help="also write <ns>/depth/colored (bgr8 preview)")
    model = p.add_argument_group("model (defaults from the params file; these override it)")
    model.add_argument("--params-file", type=pathlib.Path,
                       help="the node's ROS 2 params file (default: the package's config/depth.yaml)")
    model.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="set any node parameter, e.g. --param cloud_stride=2 (repeatable)")
    model.add_argument("--encoder", choices=("vits", "vitb", "vitl"))
    model.add_argument("--model-type", choices=("metric", "relative"))
    model.add_argument("--dataset", choices=("hypersim", "vkitti"))
    model.add_argument("--max-depth", type=float, help="metric head scale in meters (20 indoor, 80 outdoor)")
    model.add_argument("--checkpoint",
                       help="a .pth or .safetensors file (default: the official file in the weights dir)")
    model.add_argument("--weights-dir", help="folder of the official checkpoints")
    model.add_argument("--input-size", type=int, help="model input resolution, a multiple of 14 (e.g. 518)")
    model.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    model.add_argument("--backend", choices=BACKEND_CHOICES,
                       help="engine: auto (torch on CUDA, OpenVINO on the CPU when installed), torch, openvino, "
                            "onnxruntime")
    model.add_argument("--precision", choices=PRECISION_CHOICES)
    model.add_argument("--preprocess", choices=PREPROCESS_CHOICES)
    model.add_argument("--allow-random-weights", action="store_true", default=None,
                       help="run on random weights when no checkpoint is found (tests and demos: meaningless depth)")


def bag_name(bag: pathlib.Path) -> str:
    """A bag's name for its outputs: a bag folder's name, a single-file bag's stem (dav2_bags names its output
    folders with it too)."""
    return bag.name if bag.is_dir() else bag.stem


def default_output(input_bag: pathlib.Path) -> pathlib.Path:
    """`<bag>_depth` beside a bag folder, or beside a single .mcap/.db3 file (named after its stem)."""
    return input_bag.with_name(f"{bag_name(input_bag)}_depth")


class StopRequest:
    """SIGINT handling for the frame loop: the first Ctrl-C asks to stop after the current frame
    (so the output bag is closed cleanly); a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Route SIGINT to this object for the duration of the block."""
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def _settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The named model options as node parameter names (None = not given)."""
    return {
        "encoder": args.encoder, "model_type": args.model_type, "dataset": args.dataset,
        "max_depth": args.max_depth, "checkpoint": args.checkpoint, "weights_dir": args.weights_dir,
        "input_size": args.input_size, "device": args.device, "backend": args.backend, "precision": args.precision,
        "preprocess": args.preprocess, "allow_random_weights": args.allow_random_weights,
    }


def tool_settings(args: argparse.Namespace) -> NodeSettings:
    """The model and processing settings of the options: the params file, then --param, then named options."""
    params_file = args.params_file if args.params_file is not None else default_params_file()
    return load_settings(params_file, args.param, _settings_overrides(args))


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """The estimator and frame processor of some settings, built and warmed up once: bag_to_depth builds one per
    run, a dav2_bags worker one for all its bags (the processor keeps no state from frame to frame; each bag's
    converter has its own temporal filter)."""

    processor: FrameProcessor
    description: dict[str, str]


def load_model(settings: NodeSettings) -> LoadedModel:
    """Build, prepare and warm up the model of `settings`; raises StartupError."""
    estimator, weights = build_estimator(settings, LOG)
    prepare_estimator(estimator, settings, LOG)
    warn_unusable(estimator, settings, LOG)
    processor = build_processor(estimator, settings)
    warm_up(processor, settings)  # so the first frame's latency is not one-time setup
    return LoadedModel(processor, describe_estimator(estimator, settings, weights))


def run(args: argparse.Namespace, model: LoadedModel | None = None,
        progress: Callable[[int], Any] | None = None, stop_requested: Callable[[], bool] | None = None) -> int:
    """Convert one bag; raises BagError/SettingsError/StartupError for problems found before the loop.

    Args:
        args: the parsed options.
        model: a model already loaded for these options (dav2_bags' workers), or None: load it here.
        progress: makes the frame progress (anything with tqdm's `update(n)` and `close()`) from the bag's frame
            count; None: a tqdm bar on stderr unless --no-progress.
        stop_requested: polled between frames to stop early (the output bag stays valid); None: the first Ctrl-C.
    """
    settings = tool_settings(args)
    typestore = ros2_typestore()
    output = args.output if args.output is not None else default_output(args.input)
    with contextlib.closing(open_reader(args.input)) as reader:
        camera = select_camera(reader, typestore, args.image_topic, args.info_topic, args.output_ns)
        sparse = select_sparse(reader, camera.namespace, args.sparse_topic, settings.sparse_input)
        if sparse is not None and settings.sparse_input != sparse[1]:
            settings = settings.with_params({"sparse.input": sparse[1]})
        prepare_output(output, args.input, args.overwrite)
        if model is None:
            model = load_model(settings)
        processor, model_facts = model.processor, model.description
        source = FrameSource(reader, camera, typestore, copy_input=args.copy_input,
                             sparse=sparse[0] if sparse is not None else None)
        aligner = _sparse_aligner(sparse)
        stats = RunStats(frames_in_bag=source.frame_count)
        if progress is None:
            bar = tqdm(total=source.frame_count, unit="frame", desc=PROG, disable=args.no_progress,
                       file=sys.stderr, dynamic_ncols=True)
        else:
            bar = progress(source.frame_count)
        out = OutputBag(output, args.storage, typestore)
        converter = BagConverter(processor, settings, camera, out, typestore,
                                 OutputTopics.under(camera.namespace), colorize=args.colored,
                                 sparse=SparseTrack(aligner, source.sparse_buffer) if aligner is not None else None)
        stopping = StopRequest().installed() if stop_requested is None else contextlib.nullcontext(None)
        try:
            with stopping as stop:
                converter.run(source, stats, on_frame=lambda: bar.update(1),
                              stop_requested=stop_requested or (lambda: stop.requested))
        except KeyboardInterrupt:  # a second Ctrl-C: stop right here, still close the bag
            stats.interrupted = True
        except BagError as error:  # the input turned out damaged part-way: keep what was done
            stats.stopped_by_error = str(error)
        finally:
            bar.close()
            out.close()
    header = [
        f"input:    {args.input} (camera {camera.image.topic}; CameraInfo {camera.info_note})",
        f"output:   {output} ({args.storage}), namespace {camera.namespace}",
        f"model:    {model_facts['model']}, weights {model_facts['weights']}, {model_facts['device']} "
        f"{model_facts['precision']}, input_size {settings.input_size}",
        f"engine:   {model_facts['engine']}",
    ]
    if not settings.publishes_metric_depth:
        header.append("note:     relative model without relative_scale: only <ns>/depth/relative (unitless inverse "
                      "depth) is written; depth/image, depth/camera_info and points need relative_scale")
    if aligner is not None:
        header.append(_sparse_line(aligner, settings, stats.frames_read, source.undecodable_sparse))
    if source.undecodable_camera_infos:
        header.append(f"warning:  {source.undecodable_camera_infos} CameraInfo message(s) did not decode "
                      "and were skipped")
    print(format_summary(stats, header, out.counts))
    if args.summary_json is not None:
        summary = {**stats.to_dict(), "output": str(output), "topics": out.counts, "namespace": camera.namespace,
                   "image_topic": camera.image.topic, "info_topic": camera.info.topic if camera.info else None,
                   "info_note": camera.info_note, "model": model_facts}
        if aligner is not None:
            status = aligner.status()
            summary["sparse"] = {"topic": aligner.topic, "kind": aligner.kind, "frames_fitted": status.frames_fitted,
                                 "rejected": dict(status.rejected), "last": dict(status.items())}
        args.summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    if stats.interrupted:
        return EXIT_INTERRUPTED
    if stats.stopped_by_error:
        print(f"{PROG}: error: {stats.stopped_by_error}", file=sys.stderr)
        return EXIT_ERROR
    if stats.frames_read and not (stats.depth_written or stats.relative_written):
        print(f"{PROG}: error: none of the {stats.frames_read} frames could be processed (see failures above)",
              file=sys.stderr)
        return EXIT_ERROR
    return 0


def _sparse_aligner(sparse: tuple[Any, str] | None) -> SparseAligner | None:
    """The metric-scale fit to the sparse topic; each reason a frame's sparse depth is not used is said once."""
    if sparse is None:
        return None
    said: set[str] = set()

    def problem(error: SparseRejected) -> None:
        if error.reason not in said:
            said.add(error.reason)
            LOG.warning("sparse depth not used (%s): %s (said once; counted in the summary)", error.reason,
                        error.detail)
    return SparseAligner(sparse[1], sparse[0].topic, None, NO_TRANSFORM, problem)


def _sparse_line(aligner: SparseAligner, settings: Any, frames: int, undecodable: int) -> str:
    """The summary line of the sparse fit."""
    status = aligner.status()
    if not SparseOptions.from_settings(settings).applies_to(settings.model_type):
        return (f"sparse:   {aligner.topic} NOT used: a metric model needs sparse.metric_correction true "
                "(--param sparse.metric_correction=true)")
    rejected = ", ".join(f"{reason}={count}" for reason, count in sorted(status.rejected.items())) or "none"
    damaged = f"; {undecodable} message(s) did not decode" if undecodable else ""
    return (f"sparse:   {aligner.topic} ({aligner.kind}): {status.frames_fitted} of {frames} frames fitted "
            f"(last: {status.inliers} of {status.points} points inliers, residual {status.residual:.4f}); "
            f"not used: {rejected}{damaged}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bag_to_depth` console script (also `ros2 run dav2_ros bag_to_depth`)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s")
    return run_command(PROG, lambda: run(args), errors=(BagError, SettingsError, StartupError),
                       interrupted="interrupted before the first frame; no output bag was written")


if __name__ == "__main__":
    sys.exit(main())

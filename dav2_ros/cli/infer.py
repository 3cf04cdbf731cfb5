"""`dav2_infer`: Depth Anything V2 on image files, like the official run.py, without ROS.

    dav2_infer photo.jpg more_photos/ --encoder vits --model-type metric --outdir out/

For each image it writes `<stem>.npy` (the raw float32 HxW output: meters for metric, inverse depth
for relative; nothing rescaled) and `<stem>.png` (a colorized view, range = the image's 2nd-98th
percentile, near = warm) and prints the time per image. Without --checkpoint it loads the official file from
the weights folder (see `dav2_weights`). Also reachable as `ros2 run dav2_ros dav2_infer` and
`python -m dav2_ros.cli.infer`.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dav2_ros.command_line import run_command
from dav2_ros.engines.base import EngineShapeError
from dav2_ros.engines.registry import BACKEND_CHOICES
from dav2_ros.model.config import PRECISION_CHOICES, PREPROCESS_CHOICES, input_size_problem
from dav2_ros.weights.cache import WeightsNotFound, resolve_checkpoint
from dav2_ros.weights.catalog import DATASET_CHOICES, DATASET_MAX_DEPTH, ENCODER_CHOICES, MODEL_TYPE_CHOICES

PROG = "dav2_infer"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
PNG_PERCENTILES = (2.0, 98.0)


class UsageError(ValueError):
    """Bad inputs on the command line (no images, clashing output names, ...)."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of `dav2_infer`."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run Depth Anything V2 on images; write <stem>.npy (raw float32 depth) and <stem>.png.",
    )
    parser.add_argument(
        "inputs", nargs="+", help="image files, folders of images, or .txt files listing one image path per line"
    )
    parser.add_argument("--encoder", choices=ENCODER_CHOICES, default="vits", help="ViT size (default: vits)")
    parser.add_argument(
        "--model-type",
        choices=MODEL_TYPE_CHOICES,
        default="metric",
        help="metric: meters; relative: inverse depth without scale (default: metric)",
    )
    parser.add_argument(
        "--dataset",
        choices=DATASET_CHOICES,
        default="hypersim",
        help="which official metric checkpoint: hypersim = indoor, vkitti = outdoor (default: hypersim)",
    )
    parser.add_argument(
        "--max-depth",
        type=float,
        default=None,
        help="metric head scale in meters (default: 20 for hypersim, 80 for vkitti); ignored for relative",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", default="", help="checkpoint file (.pth or HF .safetensors)")
    source.add_argument(
        "--random-weights",
        action="store_true",
        help="random weights instead of a checkpoint: for smoke tests only, the output is meaningless",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-weights (default: 0)")
    parser.add_argument(
        "--weights-dir", default=None, help="weights folder (default: $DAV2_WEIGHTS_DIR or ~/.cache/dav2_ros)"
    )
    parser.add_argument("--input-size", type=int, default=518, help="model input resolution (default: 518)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument(
        "--backend", choices=BACKEND_CHOICES, default="auto",
        help="engine: auto (torch on CUDA, OpenVINO on the CPU when installed, else torch), torch (the reference), "
             "openvino, onnxruntime (default: auto)",
    )
    parser.add_argument(
        "--precision", choices=PRECISION_CHOICES, default="auto", help="(default: auto)"
    )
    parser.add_argument(
        "--preprocess",
        choices=PREPROCESS_CHOICES,
        default="auto",
        help="exact: the official CPU pipeline bit for bit; fast: on-device; auto: fast on GPU (default: auto)",
    )
    parser.add_argument("--outdir", default="dav2_out", help="output folder (default: ./dav2_out)")
    parser.add_argument("--grayscale", action="store_true", help="write the PNG as 8-bit grayscale, not colorized")
    return parser


def collect_images(inputs: Sequence[str]) -> list[Path]:
    """The image files named by `inputs` (files, folders non-recursively, .txt lists), in order.

    Raises:
        UsageError: a path that does not exist, or no image at all.
    """
    images: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            images.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file() and path.suffix.lower() == ".txt":
            lines = path.read_text().splitlines()
            images.extend(Path(line.strip()).expanduser() for line in lines if line.strip())
        elif path.is_file():
            images.append(path)
        else:
            raise UsageError(f"input not found: {path}")
    if not images:
        raise UsageError(f"no images found in {', '.join(inputs)} (looked for {', '.join(IMAGE_SUFFIXES)})")
    seen: dict[str, Path] = {}
    for image in images:
        if image.stem in seen and seen[image.stem] != image:
            raise UsageError(
                f"{seen[image.stem]} and {image} share the name '{image.stem}': their outputs would overwrite "
                f"each other; run them into different --outdir folders"
            )
        seen[image.stem] = image
    return list(dict.fromkeys(images))


def png_for(depth: np.ndarray, metric: bool, grayscale: bool) -> np.ndarray:
    """An 8-bit picture of `depth` for a person to look at, scaled to its 2nd-98th percentile.

    Near is warm (colorized, geometry.colorize.colorize_depth, BGR) or bright (grayscale) for both
    metric depth (small = near) and relative inverse depth (large = near); NaN is black.
    """
    from dav2_ros.geometry.colorize import colorize_depth, robust_range

    low, high = robust_range(depth, *PNG_PERCENTILES)
    if not high > low:
        high = low + max(abs(low) * 1e-6, 1e-6)
    if grayscale:
        with np.errstate(invalid="ignore"):
            scaled = np.clip((depth - low) / (high - low), 0.0, 1.0)
        if metric:
            scaled = 1.0 - scaled
        return np.nan_to_num(scaled * 255.0, nan=0.0).round().astype(np.uint8)
    return colorize_depth(depth, low, high, reverse=metric)


def _load_estimator(args: argparse.Namespace, max_depth: float):
    """The DepthEstimator the arguments ask for (random weights, an explicit file, or the official one)."""
    # The checkpoint is resolved before torch is imported, so a missing file is reported at once.
    path = None if args.random_weights else resolve_checkpoint(
        args.checkpoint, args.encoder, args.model_type, args.dataset, args.weights_dir
    )
    from dav2_ros.engines.estimator import DepthEstimator

    common = dict(
        encoder=args.encoder,
        model_type=args.model_type,
        max_depth=max_depth,
        device=args.device,
        precision=args.precision,
        preprocess=args.preprocess,
        backend=args.backend,
    )
    if path is None:
        print(
            f"{PROG}: WARNING: --random-weights: the network has RANDOM weights; the depth it writes is "
            f"MEANINGLESS (use it only to test the pipeline)",
            file=sys.stderr,
        )
        return DepthEstimator.random(seed=args.seed, **common), f"random weights (seed {args.seed})"
    return DepthEstimator.from_checkpoint(path, **common), str(path)


def run(args: argparse.Namespace) -> int:
    """Run the model on every image; returns the exit status (1 if any image failed)."""
    import cv2

    problem = input_size_problem(args.input_size)
    if problem:
        raise UsageError(f"--input-size {problem} (one patch), got {args.input_size}")
    if args.max_depth is not None and args.model_type == "relative":
        print(f"{PROG}: note: --max-depth is ignored for a relative model", file=sys.stderr)
    max_depth = args.max_depth if args.max_depth is not None else DATASET_MAX_DEPTH[args.dataset]
    images = collect_images(args.inputs)

    start = time.perf_counter()
    estimator, source = _load_estimator(args, max_depth)
    load_s = time.perf_counter() - start
    outdir = Path(args.outdir).expanduser()
    outdir.mkdir(parents=True, exist_ok=True)
    unit = f"meters, max_depth {max_depth:g}" if args.model_type == "metric" else "inverse depth, no scale"
    print(
        f"model {args.encoder} {args.model_type} ({unit}) from {source}; device {estimator.device}, "
        f"precision {estimator.precision}, preprocess {estimator.preprocess}, input size {args.input_size}; "
        f"loaded in {load_s:.2f} s\nengine: {estimator.describe_engine()}"
    )

    times: list[float] = []
    failed = 0
    for index, image_path in enumerate(images, start=1):
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:
            print(f"{PROG}: warning: cannot read {image_path} as an image; skipped", file=sys.stderr)
            failed += 1
            continue
        t0 = time.perf_counter()
        try:
            depth = estimator.infer(image, args.input_size, color_order="bgr")
        except EngineShapeError as error:
            print(f"{PROG}: warning: {image_path}: {error}; skipped", file=sys.stderr)
            failed += 1
            continue
        elapsed = time.perf_counter() - t0
        times.append(elapsed)
        npy_path = outdir / f"{image_path.stem}.npy"
        png_path = outdir / f"{image_path.stem}.png"
        np.save(npy_path, np.asarray(depth, dtype=np.float32))
        if not cv2.imwrite(str(png_path), png_for(depth, args.model_type == "metric", args.grayscale)):
            print(f"{PROG}: warning: could not write {png_path}", file=sys.stderr)
            failed += 1
        finite = depth[np.isfinite(depth)]
        value_range = f"{finite.min():.3g}..{finite.max():.3g}" if finite.size else "no finite values"
        stages = ", ".join(f"{name} {seconds:.3f}" for name, seconds in estimator.last_timings.items())
        print(
            f"[{index}/{len(images)}] {image_path.name} {image.shape[1]}x{image.shape[0]}: {elapsed:.3f} s "
            f"({stages}), range {value_range} -> {npy_path.name}, {png_path.name}"
        )
    if times:
        print(
            f"{len(times)} image(s) in {outdir}; per image median {statistics.median(times):.3f} s, "
            f"first {times[0]:.3f} s"
        )
    if failed:
        print(f"{PROG}: error: {failed} image(s) failed", file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    # The model reports checkpoint-name warnings (e.g. a metric file run as relative) through logging.
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s", stream=sys.stderr)
    return run_command(PROG, lambda: run(args), usage_errors=(UsageError,),
                       errors=(WeightsNotFound, ValueError, OSError))


if __name__ == "__main__":
    sys.exit(main())

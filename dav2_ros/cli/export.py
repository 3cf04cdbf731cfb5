"""`dav2_export`: a checkpoint -> ONNX and OpenVINO IR files, checked against the torch network first.

    dav2_export --encoder vits --model-type metric --dataset hypersim --frame-size 640x480 --outdir exported/

writes ``<checkpoint stem>_<h>x<w>.onnx`` (opset 17, dynamic batch, fixed network input h x w: see
``dav2_ros.engines.export`` for why the size is fixed) and ``<checkpoint stem>_<h>x<w>.xml/.bin`` (OpenVINO
IR, fp32 weights). The network input size comes from the camera's frame size and the input size, by the
same resize rule the node uses (640x480 at 518 -> 518x686). Each file is run on a real camera frame (the
bundled TUM frame, or --image) in ONNX Runtime / OpenVINO next to the torch network, and appears only if
it matches; then the command prints the `trtexec` line that builds a TensorRT fp16 engine from the ONNX
file on a Jetson or GPU. Bad input gives one error line and exit status 1, and leaves no file behind.
Also reachable as `ros2 run dav2_ros dav2_export` and `python -m dav2_ros.cli.export`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from dav2_ros.command_line import run_command
from dav2_ros.engines.export import FORMATS, ExportError, export_name, output_paths, trtexec_command
from dav2_ros.model.config import PATCH_SIZE as PATCH
from dav2_ros.weights.cache import WeightsNotFound, resolve_checkpoint
from dav2_ros.weights.catalog import DATASET_CHOICES, DATASET_MAX_DEPTH, ENCODER_CHOICES, MODEL_TYPE_CHOICES

PROG = "dav2_export"


class UsageError(ValueError):
    """A bad command-line value (unknown encoder, input size not a multiple of 14, ...)."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of `dav2_export` (values are checked in `check_args`, for one-line errors)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export Depth Anything V2 to ONNX and OpenVINO IR at a fixed network input size; each file is "
                    "checked against the torch network on a real frame before it is written.",
    )
    parser.add_argument("--encoder", default="vits", help=f"ViT size: {', '.join(ENCODER_CHOICES)} (default: vits)")
    parser.add_argument("--model-type", default="metric",
                        help="metric (meters) or relative (inverse depth without scale) (default: metric)")
    parser.add_argument("--dataset", default="hypersim",
                        help="official metric checkpoint: hypersim = indoor, vkitti = outdoor (default: hypersim)")
    parser.add_argument("--max-depth", type=float, default=None,
                        help="metric head scale in meters (default: 20 for hypersim, 80 for vkitti)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", default="", help="checkpoint file (.pth or HF .safetensors); default: the "
                                                         "official file in the weights folder")
    source.add_argument("--random-weights", action="store_true",
                        help="stand-in random weights instead of a checkpoint (tests only: the depth is meaningless)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-weights (default: 0)")
    parser.add_argument("--weights-dir", default=None,
                        help="weights folder (default: $DAV2_WEIGHTS_DIR or ~/.cache/dav2_ros)")
    parser.add_argument("--input-size", default="518",
                        help="model input resolution, a multiple of 14: the frame's shorter side is resized to it "
                             "(default: 518)")
    parser.add_argument("--frame-size", default="640x480",
                        help="the camera's frame size WIDTHxHEIGHT, which fixes the network input shape with "
                             "--input-size (default: 640x480 -> 518x686 at 518)")
    parser.add_argument("--format", dest="formats", action="append", default=None,
                        help=f"{', '.join(FORMATS)} or all; repeatable (default: all)")
    parser.add_argument("--outdir", default=".", help="output folder, created if missing (default: .)")
    parser.add_argument("--name", default=None,
                        help="file stem before _<h>x<w> (default: the checkpoint's stem)")
    parser.add_argument("--image", default=None,
                        help="camera frame the exports are checked on (default: the bundled TUM RGB-D frame)")
    return parser


def parse_frame_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--frame-size must be WIDTHxHEIGHT, e.g. 640x480, got {text!r}") from None
    if width < 1 or height < 1:
        raise UsageError(f"--frame-size must be positive, got {text!r}")
    return width, height


def check_args(args: argparse.Namespace) -> tuple[int, tuple[int, int], list[str]]:
    """The input size, frame size and formats, after checking every value that needs no torch.

    Raises:
        UsageError: the first bad value, in one line.
    """
    if args.encoder not in ENCODER_CHOICES:
        raise UsageError(f"unknown encoder {args.encoder!r} (choices: {', '.join(ENCODER_CHOICES)})")
    if args.model_type not in MODEL_TYPE_CHOICES:
        raise UsageError(f"unknown model type {args.model_type!r} (choices: {', '.join(MODEL_TYPE_CHOICES)})")
    if args.dataset not in DATASET_CHOICES:
        raise UsageError(f"unknown dataset {args.dataset!r} (choices: {', '.join(DATASET_CHOICES)})")
    try:
        input_size = int(args.input_size)
    except ValueError:
        raise UsageError(f"--input-size must be an integer, got {args.input_size!r}") from None
    if input_size < PATCH or input_size % PATCH:
        near = max(PATCH, round(input_size / PATCH) * PATCH)
        raise UsageError(f"--input-size must be a positive multiple of {PATCH} (the ViT's patch size), got "
                         f"{input_size}; e.g. {near}")
    if args.max_depth is not None and not args.max_depth > 0:
        raise UsageError(f"--max-depth must be > 0, got {args.max_depth}")
    formats: list[str] = []
    for item in args.formats or ["all"]:
        for fmt in item.split(","):
            if fmt == "all":
                formats.extend(FORMATS)
            elif fmt in FORMATS:
                formats.append(fmt)
            else:
                raise UsageError(f"unknown format {fmt!r} (choices: {', '.join(FORMATS)}, all)")
    return input_size, parse_frame_size(args.frame_size), list(dict.fromkeys(formats))


def prepare_outdir(outdir: Path) -> Path:
    """The output folder, created when missing and proven writable (before the minute an export takes).

    Raises:
        UsageError: it is not a folder, or cannot be created or written.
    """
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        probe = outdir / f".{PROG}.probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UsageError(f"cannot write to the output folder {outdir}: {error.strerror or error}") from None
    return outdir


def read_check_frame(path: Optional[str]):
    """The BGR uint8 frame the exports are checked on: --image, or the bundled TUM RGB-D frame."""
    import cv2

    from dav2_ros.engines.export import CHECK_FRAME, bundled_frame

    if path is None:
        return bundled_frame(), f"the bundled {CHECK_FRAME}"
    image = cv2.imread(str(Path(path).expanduser()), cv2.IMREAD_COLOR)
    if image is None:
        raise UsageError(f"cannot read the check frame {path} as an image")
    return image, path


def load_network(args: argparse.Namespace, max_depth: float):
    """(torch network, where its weights came from, default file stem)."""
    path = None if args.random_weights else resolve_checkpoint(
        args.checkpoint, args.encoder, args.model_type, args.dataset, args.weights_dir)
    from dav2_ros.engines.export import build_network
    from dav2_ros.weights.checkpoint import load_state_dict, warn_about_name

    common = dict(encoder=args.encoder, model_type=args.model_type, max_depth=max_depth)
    if path is None:
        import torch

        from dav2_ros.model.config import ModelConfig
        from dav2_ros.model.depth_anything_v2 import DepthAnythingV2
        from dav2_ros.weights.standin_weights import reference_state_dict

        print(f"{PROG}: WARNING: --random-weights: the exported network has RANDOM weights; its depth is "
              f"MEANINGLESS (use it only to test the tool chain)", file=sys.stderr)
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in DepthAnythingV2(ModelConfig(args.encoder, args.model_type))
                      .state_dict().items()}
        weights = {k: torch.from_numpy(v) for k, v in reference_state_dict(shapes, seed=args.seed).items()}
        source = f"random weights (seed {args.seed})"
        stem = f"random{args.seed}_{args.encoder}_{args.model_type}"
        return build_network(weights, source=source, **common), source, stem
    network = build_network(load_state_dict(path), source=str(path), **common)
    warn_about_name(path, args.model_type, max_depth)
    return network, str(path), path.stem


def run(args: argparse.Namespace) -> int:
    """Export every requested format; returns the exit status."""
    input_size, (frame_width, frame_height), formats = check_args(args)
    if args.max_depth is not None and args.model_type == "relative":
        print(f"{PROG}: note: --max-depth is ignored for a relative model", file=sys.stderr)
    max_depth = args.max_depth if args.max_depth is not None else DATASET_MAX_DEPTH[args.dataset]
    outdir = prepare_outdir(Path(args.outdir).expanduser())
    from dav2_ros.engines import export as ex

    for fmt in formats:
        ex.require(fmt)  # a missing package is said before the model loads
    image, image_source = read_check_frame(args.image)
    height, width = ex.network_shape(frame_width, frame_height, input_size)

    start = time.perf_counter()
    network, source, stem = load_network(args, max_depth)
    name = export_name(args.name or stem, height, width)
    batch = ex.check_batch(image, height, width)
    reference = ex.torch_output(network, batch)
    print(f"{args.encoder} {args.model_type}"
          + (f" (max_depth {max_depth:g} m)" if args.model_type == "metric" else "")
          + f" from {source}: network input {height}x{width} (h x w; frame {frame_width}x{frame_height} at input size "
          f"{input_size}), dynamic batch; loaded in {time.perf_counter() - start:.1f} s; checking on {image_source}")
    metadata = ex.model_metadata(args.encoder, args.model_type, max_depth, height, width,
                                 ex.weights_fingerprint(network), source)
    onnx_path = None
    for fmt in formats:
        check = ex.export_checked(network, fmt, height, width, outdir, name, batch, reference=reference,
                                  metadata=metadata)
        files = ", ".join(str(p) for p in output_paths(outdir, name, fmt))
        print(f"{fmt}: {files}: exported in {check.export_s:.1f} s; vs torch fp32 on the frame: max error "
              f"{check.max_error:.2e} x max|depth| (limit {check.tolerance:g}), mean {check.mean_error:.2e}; "
              f"ran in {check.check_s:.1f} s")
        if fmt == "onnx":
            onnx_path = check.path
    if onnx_path is not None:
        print("TensorRT fp16 engine for a Jetson or an NVIDIA GPU (build it on that device; engines do not move):")
        print(f"  {trtexec_command(onnx_path, height, width)}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s", stream=sys.stderr)
    return run_command(PROG, lambda: run(args), errors=(UsageError, WeightsNotFound, ExportError, ValueError, OSError),
                       interrupted="interrupted; nothing was left half-written")


if __name__ == "__main__":
    sys.exit(main())

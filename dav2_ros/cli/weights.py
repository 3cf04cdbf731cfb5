"""`dav2_weights`: download official checkpoints (through the Hugging Face cache), list them, print their path.

    dav2_weights download --encoder vits --model-type metric --dataset hypersim
    dav2_weights list [--all] [--check]
    dav2_weights path --encoder vitb --model-type relative

Also reachable as `ros2 run dav2_ros dav2_weights ...` and `python -m dav2_ros.cli.weights ...`.
`download` fetches with huggingface_hub into the Hugging Face cache and links the checked file into
the weights folder (dav2_ros/weights/download.py).
Failures end with a one-line `dav2_weights: error: ...` on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from dav2_ros.command_line import run_command
from dav2_ros.weights.cache import WeightsNotFound, resolve_checkpoint, weights_dir
from dav2_ros.weights.catalog import (
    DATASET_CHOICES,
    ENCODER_CHOICES,
    MODEL_TYPE_CHOICES,
    OFFICIAL_CHECKPOINTS,
    by_filename,
    official_checkpoint,
)
from dav2_ros.weights.download import DownloadError, download_checkpoint, endpoint, sha256_of

PROG = "dav2_weights"
_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors")


def _human_size(size: int) -> str:
    """Bytes as a short human string (decimal units, like the Hugging Face pages)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    """The arguments that pick one official checkpoint, plus the folder."""
    parser.add_argument("--encoder", choices=ENCODER_CHOICES, default="vits", help="ViT size (default: vits)")
    parser.add_argument(
        "--model-type",
        choices=MODEL_TYPE_CHOICES,
        default="metric",
        help="metric (meters) or relative (inverse depth) (default: metric)",
    )
    parser.add_argument(
        "--dataset",
        choices=DATASET_CHOICES,
        default="hypersim",
        help="metric fine-tuning set: hypersim = indoor (max_depth 20), vkitti = outdoor (max_depth 80) "
        "(default: hypersim; ignored for relative)",
    )
    parser.add_argument(
        "--dir", dest="folder", default=None, help="weights folder (default: $DAV2_WEIGHTS_DIR or ~/.cache/dav2_ros)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line of `dav2_weights`."""
    parser = argparse.ArgumentParser(prog=PROG, description="Official Depth Anything V2 checkpoints on this machine.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{download,list,path}")

    download = sub.add_parser(
        "download",
        help="download an official checkpoint into the Hugging Face cache and link it into the weights folder",
    )
    _add_model_args(download)
    download.add_argument(
        "--base-url",
        default=None,
        help="hub endpoint laid out like huggingface.co, e.g. a mirror (default: $DAV2_WEIGHTS_BASE_URL, "
        "else $HF_ENDPOINT, else https://huggingface.co)",
    )
    download.add_argument("--force", action="store_true", help="download again even if the file is present")
    download.add_argument("--copy", action="store_true",
                          help="put a copy in the weights folder instead of a link into the Hugging Face cache")
    download.add_argument("--no-progress", action="store_true", help="no progress bar")
    download.add_argument("--timeout", type=float, default=None,
                          help="seconds the hub may take to answer (default: huggingface_hub's, 10)")

    listing = sub.add_parser("list", help="list the checkpoints in the weights folder")
    listing.add_argument("--dir", dest="folder", default=None, help="weights folder")
    listing.add_argument("--all", action="store_true",
                         help="also list the official files that are not in the folder, with URLs")
    listing.add_argument("--check", action="store_true", help="hash cached official files against published SHA-256")

    path = sub.add_parser("path", help="print the path of a checkpoint (exit 1 when it is missing)")
    _add_model_args(path)
    path.add_argument("--checkpoint", default="", help="an explicit file; wins over the official name")
    return parser


def _quiet_hub_logging() -> None:
    """huggingface_hub's retry and resume warnings off: a failure ends in one line of ours."""
    try:
        from huggingface_hub.utils import logging as hub_logging
    except ImportError:  # download_checkpoint says how to install it
        return
    hub_logging.set_verbosity_error()


def _cmd_download(args: argparse.Namespace) -> int:
    """Fetch one official checkpoint; print where it is."""
    _quiet_hub_logging()
    entry = official_checkpoint(args.encoder, args.model_type, args.dataset)
    folder = weights_dir(args.folder)
    if not (folder / entry.filename).is_file() or args.force:
        print(f"downloading {entry.describe()}: {entry.url_from(endpoint(args.base_url))}", file=sys.stderr)
    result = download_checkpoint(entry, folder, base=args.base_url, force=args.force, copy=args.copy,
                                 progress=not args.no_progress, timeout=args.timeout)
    if not result.downloaded:
        print(f"already present: {result.path} ({_human_size(result.size)}); use --force to download again")
        return 0
    where = f"a copy of {result.cached}" if args.copy else f"-> {result.cached}"
    print(f"saved {result.path} {where} ({_human_size(result.size)}, sha256 verified, loads)")
    print(f"sha256 {result.sha256}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    """Print the folder and what is in it."""
    folder = weights_dir(args.folder)
    if not folder.is_dir():
        print(f"weights folder: {folder} (does not exist yet)")
        files: list[Path] = []
    else:
        print(f"weights folder: {folder}")
        files = sorted(p for p in folder.iterdir() if p.suffix in _CHECKPOINT_SUFFIXES and not p.name.startswith("."))
    checkpoints = [p for p in files if p.is_file()]
    broken = [p for p in files if p.is_symlink() and not p.exists()]
    mismatched = 0
    if not checkpoints:
        print("no checkpoints cached")
    for path in checkpoints:
        entry = by_filename(path.name)
        label = f"official {entry.describe()}" if entry else "not an official file name"
        if path.is_symlink():
            label += " (in the Hugging Face cache)"
        line = f"  {path.name:<48} {_human_size(path.stat().st_size):>9}  {label}"
        if args.check and entry is not None:
            if sha256_of(path) == entry.sha256:
                line += "  [sha256 ok]"
            else:
                line += "  [SHA256 MISMATCH]"
                mismatched += 1
        print(line)
    for path in broken:
        print(f"  {path.name:<48} {'-':>9}  broken link to {os.readlink(path)} "
              "(removed from the Hugging Face cache; download it again)")
    if args.all:
        cached = {p.name for p in checkpoints}
        print("official checkpoints:")
        for entry in OFFICIAL_CHECKPOINTS:
            state = "cached " if entry.filename in cached else "missing"
            print(f"  [{state}] {entry.filename:<48} {entry.describe()}  {entry.url}")
    if mismatched:
        print(f"{PROG}: error: {mismatched} cached file(s) do not match the published sha256", file=sys.stderr)
        return 1
    return 0


def _cmd_path(args: argparse.Namespace) -> int:
    """Print the resolved checkpoint path; exit 1 (with how to fetch it) when it is missing."""
    try:
        path = resolve_checkpoint(args.checkpoint, args.encoder, args.model_type, args.dataset, args.folder)
    except WeightsNotFound as err:
        print(err.path)
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    commands = {"download": _cmd_download, "list": _cmd_list, "path": _cmd_path}
    return run_command(PROG, lambda: commands[args.command](args),
                       errors=(DownloadError, WeightsNotFound, ValueError, OSError),
                       interrupted="interrupted (nothing was kept under the final name)")


if __name__ == "__main__":
    sys.exit(main())

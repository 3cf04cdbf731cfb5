"""The local weights folder and how a checkpoint setting turns into a file path.

The folder is `$DAV2_WEIGHTS_DIR`, else `~/.cache/dav2_ros`. An explicit checkpoint path always
wins; an empty one means "the official file for this encoder / model type / dataset in the folder"
(`dav2_weights download` makes it a link into the Hugging Face cache, or a copy). Nothing here
touches the network or imports huggingface_hub: a missing file is an error that says how to fetch it.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Optional, Union

from dav2_ros.weights.catalog import OfficialCheckpoint, official_checkpoint

WEIGHTS_DIR_ENV = "DAV2_WEIGHTS_DIR"
FALLBACK_WEIGHTS_DIR = Path("~/.cache/dav2_ros")

PathLike = Union[str, "os.PathLike[str]"]


class WeightsNotFound(FileNotFoundError):
    """A checkpoint file that is not on disk; the message names the file and the command that fetches it.

    Attributes:
        path: the file that was looked for.
        download_command: the `ros2 run ...` command that fetches it (None for an explicit path
            that is not an official file).
    """

    def __init__(self, message: str, path: Path, download_command: Optional[str] = None) -> None:
        super().__init__(message)
        self.path = path
        self.download_command = download_command

    def __str__(self) -> str:
        return str(self.args[0])


def default_weights_dir() -> Path:
    """The weights folder when none is given: `$DAV2_WEIGHTS_DIR`, else `~/.cache/dav2_ros`."""
    env = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else FALLBACK_WEIGHTS_DIR.expanduser()


def weights_dir(explicit: Optional[PathLike] = None) -> Path:
    """The weights folder: `explicit` when given and non-empty, else the default one."""
    if explicit is not None and str(explicit).strip():
        return Path(explicit).expanduser()
    return default_weights_dir()


def download_args(entry: OfficialCheckpoint, folder: Optional[Path] = None) -> str:
    """The `download` arguments that fetch `entry` (with `--dir` when the folder is not the fallback one)."""
    args = f"download --encoder {entry.encoder} --model-type {entry.model_type}"
    if entry.dataset is not None:
        args += f" --dataset {entry.dataset}"
    if folder is not None and folder.expanduser().resolve() != FALLBACK_WEIGHTS_DIR.expanduser().resolve():
        args += f" --dir {shlex.quote(str(folder))}"
    return args


def download_commands(entry: OfficialCheckpoint, folder: Optional[Path] = None) -> tuple[str, str]:
    """The ROS form and the pip-venv form of the command that downloads `entry` into `folder`."""
    args = download_args(entry, folder)
    return f"ros2 run dav2_ros dav2_weights {args}", f"dav2_weights {args}"


def resolve_checkpoint(
    checkpoint: Optional[PathLike],
    encoder: str,
    model_type: str,
    dataset: Optional[str] = "hypersim",
    folder: Optional[PathLike] = None,
) -> Path:
    """The checkpoint file to load, which must exist.

    Args:
        checkpoint: an explicit file path (wins), or "" / None for the official file in the folder.
        encoder: "vits", "vitb" or "vitl".
        model_type: "relative" or "metric".
        dataset: "hypersim" (indoor) or "vkitti" (outdoor); used for metric models only.
        folder: the weights folder; None or "" for the default one.

    Raises:
        WeightsNotFound: the file does not exist; the message names it and how to get it.
        ValueError: an unknown encoder, model type or dataset.
    """
    if checkpoint is not None and str(checkpoint).strip():
        path = Path(checkpoint).expanduser()
        if path.is_file():
            return path
        if path.is_dir():
            raise WeightsNotFound(f"checkpoint {path} is a folder, not a checkpoint file", path)
        raise WeightsNotFound(
            f"checkpoint file not found: {path} (given explicitly); leave the checkpoint empty to use "
            f"the official file from the weights folder",
            path,
        )
    entry = official_checkpoint(encoder, model_type, dataset)
    base = weights_dir(folder)
    path = base / entry.filename
    if path.is_file():
        return path
    ros_cmd, pip_cmd = download_commands(entry, base)
    gone = f", a link to {os.readlink(path)} which is gone (Hugging Face cache cleared?)" if path.is_symlink() else ""
    raise WeightsNotFound(
        f"checkpoint not found: {path}{gone} (official {entry.describe()} weights); "
        f"fetch it with `{ros_cmd}` (pip venv: `{pip_cmd}`), or set the checkpoint to a file you have",
        path,
        ros_cmd,
    )

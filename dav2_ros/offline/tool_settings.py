"""Model and processing settings of the offline tool: the node's own params file, then overrides.

One source of truth: the same YAML the node reads (`depth_node: ros__parameters:` or `/**:`),
validated by the node's `NodeSettings`, so a bag processed offline and live uses the same model.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from dav2_ros.pipeline.settings import SPECS_BY_NAME, NodeSettings, SettingsError, load_params_file

PACKAGE = "dav2_ros"
DEFAULT_PARAMS_NAME = "depth.yaml"


def default_params_file() -> pathlib.Path | None:
    """The package's config/depth.yaml: beside the sources when run from a checkout, else the installed
    share folder (ament index); None if neither has it."""
    source_tree = pathlib.Path(__file__).resolve().parents[2] / "config" / DEFAULT_PARAMS_NAME
    if source_tree.is_file():
        return source_tree
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = pathlib.Path(get_package_share_directory(PACKAGE)) / "config" / DEFAULT_PARAMS_NAME
    except (ImportError, KeyError, OSError):  # no ament index, package not in it, AMENT_PREFIX_PATH unset
        return None
    return installed if installed.is_file() else None


def parse_assignment(text: str) -> tuple[str, Any]:
    """`name=value` (or ROS-style `name:=value`) with the value read as YAML (`true`, `3`, `0.5`, `vits`)."""
    separator = ":=" if ":=" in text else "="
    name, found, raw = text.partition(separator)
    name = name.strip()
    if not found or not name:
        raise SettingsError(f"--param expects NAME=VALUE, got {text!r}")
    if name not in SPECS_BY_NAME:
        raise SettingsError(f"--param {name}: unknown parameter; known: {', '.join(SPECS_BY_NAME)}")
    try:
        return name, yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise SettingsError(f"--param {name}: value {raw!r} is not a YAML scalar ({error})") from None


def load_settings(
    params_file: pathlib.Path | None, assignments: Iterable[str], overrides: Mapping[str, Any]
) -> NodeSettings:
    """Settings from the params file (None: the node's defaults), then `--param`s, then named options.

    Parameters of the file that are not the node's (use_sim_time, qos_overrides...) are ignored.

    Raises:
        SettingsError: unreadable file, unknown parameter, or a value the node would refuse.
    """
    params: dict[str, Any] = {}
    if params_file is not None:
        params = {name: value for name, value in load_params_file(params_file).items() if name in SPECS_BY_NAME}
    params.update(parse_assignment(text) for text in assignments)
    params.update({name: value for name, value in overrides.items() if value is not None})
    return NodeSettings.from_params(params)

"""Turns depth.launch.py's arguments into the node it starts: which executable (plain or managed), which
remappings (one camera, or each camera of `cameras`), whether it respawns, and the line the launch logs about it;
and says why a process of a launch ended.

Several cameras get their input topics at launch time in one of two ways (both may be combined; the file wins):
- a `{camera}` placeholder in `image_topic` / `camera_info_topic`: `image_topic:=/{camera}/image_raw` reads
  camera `front` from `/front/image_raw`;
- a `remappings_file` (YAML), one entry per camera:

      front:
        image: /cam_front/color/image_raw
        camera_info: /cam_front/color/camera_info

A camera given neither keeps its relative topics (`<namespace>/front/image`, `<namespace>/front/camera_info`).
The `cameras` argument reaches the node as a string array through the Node action's own parameters
(`node_parameters`; why not SetParameter: see depth.launch.py).
ROS-free (no rclpy, no launch): every function is pure and raises `LaunchArgumentError` with the reason.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Optional

from dav2_ros.pipeline.settings import NODE_NAME, check_value, load_params_file

PLACEHOLDER = "{camera}"
PLAIN_EXECUTABLE = "depth_node"
MANAGED_EXECUTABLE = "managed_depth_node"
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")
_INPUTS = ("image", "camera_info")
# Camera names that rcl's YAML reader (rcl_yaml_param_parser's get_value) types as a bool (y, n) or a float (nan,
# inf, infinity, any case: C's strtod) where they are written unquoted, as launch_ros's params file writes them
# (PyYAML quotes only the names it reads as non-strings itself: yes, on, null, ...): rcl then refuses the whole file.
_RCL_BOOLS = ("y", "Y", "n", "N")
_RCL_FLOATS = ("nan", "inf", "infinity")
# The launch arguments `plan_node` reads (depth.launch.py declares each of them).
PLAN_ARGUMENTS = ("cameras", "params_file", "image_topic", "camera_info_topic", "remappings_file", "managed",
                  "autostart", "respawn", "respawn_delay")


class LaunchArgumentError(ValueError):
    """A launch argument the launch file cannot use; the message names it and says why."""


@dataclass(frozen=True)
class NodePlan:
    """What depth.launch.py starts.

    Attributes:
        executable: `depth_node` (plain) or `managed_depth_node` (lifecycle).
        managed: the lifecycle variant.
        autostart: configure and activate the managed node from the launch file.
        respawn: restart the node when it exits; then a fatal exit does not end the launch.
        respawn_delay: seconds before a restart.
        cameras: the camera names when the `cameras` argument sets them (the node's `cameras` parameter), else
            None (the params file's value is kept).
        remappings: (node's relative topic, topic) pairs.
        summary: one line for the launch log: what runs and where each input comes from.
    """

    executable: str
    managed: bool
    autostart: bool
    respawn: bool
    respawn_delay: float
    cameras: Optional[tuple[str, ...]]
    remappings: tuple[tuple[str, str], ...]
    summary: str


def parse_flag(name: str, text: str) -> bool:
    """A boolean launch argument (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`; empty = false)."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise LaunchArgumentError(f"{name}:={text!r} is not a boolean (true or false)")


def parse_cameras(text: str) -> tuple[str, ...]:
    """`cameras:=front,rear`, `[front, rear]` or `front rear` as names (empty: none given); checked like the
    node's `cameras` parameter."""
    names = tuple(part for part in text.strip().strip("[]").replace(",", " ").split() if part)
    names = tuple(name.strip("'\"") for name in names)
    reason = check_value("cameras", list(names))
    if reason:
        raise LaunchArgumentError(f"cameras:={text!r}: {reason}")
    for name in names:
        if name in _RCL_BOOLS or name.lower() in _RCL_FLOATS:
            raise LaunchArgumentError(f"cameras:={text!r}: ROS reads {name!r} in a parameters file as a "
                                      f"{'boolean' if name in _RCL_BOOLS else 'number'}, not a camera name: "
                                      "pick another name")
    return names


def cameras_of_params_file(path: str) -> tuple[str, ...]:
    """The `cameras` parameter a params file gives the node (empty: one camera)."""
    if not path:
        return ()
    try:
        params = load_params_file(path, NODE_NAME)
    except ValueError as error:
        raise LaunchArgumentError(f"params_file:={path}: {error}") from None
    names = params.get("cameras", ())
    reason = check_value("cameras", names)
    if reason:
        raise LaunchArgumentError(f"params_file:={path}: cameras: {reason}")
    return tuple(names)


def read_remappings_file(path: str, cameras: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """camera -> {"image": topic, "camera_info": topic} from a remappings file (empty path: {})."""
    if not path:
        return {}
    import yaml  # local: only this reader needs it

    try:
        document = yaml.safe_load(pathlib.Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise LaunchArgumentError(f"remappings_file:={path}: cannot read it: {error}") from None
    if not isinstance(document, dict):
        raise LaunchArgumentError(f"remappings_file:={path}: expected camera names mapped to image/camera_info")
    if not cameras:
        raise LaunchArgumentError(f"remappings_file:={path} names cameras, but the node has one camera (no cameras "
                                  "parameter): use image_topic and camera_info_topic")
    topics: dict[str, dict[str, str]] = {}
    for camera, entry in document.items():
        if camera not in cameras:
            raise LaunchArgumentError(f"remappings_file:={path}: camera {camera!r} is not one of the node's cameras "
                                      f"({', '.join(cameras)})")
        if not isinstance(entry, dict) or not set(entry) <= set(_INPUTS) or not all(
                isinstance(topic, str) and topic for topic in entry.values()):
            raise LaunchArgumentError(f"remappings_file:={path}: {camera}: expected image and/or camera_info topic "
                                      f"names, got {entry!r}")
        topics[camera] = dict(entry)
    return topics


def input_remappings(cameras: tuple[str, ...], image_topic: str, camera_info_topic: str,
                     file_topics: Optional[dict[str, dict[str, str]]] = None) -> list[tuple[str, str]]:
    """(node's relative input topic, topic) pairs: for one camera `image`, `image/compressed` and `camera_info`;
    for each of several cameras `<camera>/image`, `<camera>/image/compressed` and `<camera>/camera_info`, from the
    remappings file or the `{camera}` placeholder (a camera with neither keeps its relative topics)."""
    file_topics = file_topics or {}
    if not cameras:
        if PLACEHOLDER in image_topic or PLACEHOLDER in camera_info_topic:
            raise LaunchArgumentError(f"{PLACEHOLDER} in image_topic/camera_info_topic needs several cameras "
                                      "(the cameras argument or parameter)")
        return _camera_remaps("", image_topic, camera_info_topic)
    remaps: list[tuple[str, str]] = []
    for camera in cameras:
        given = file_topics.get(camera, {})
        image = given.get("image") or (image_topic.replace(PLACEHOLDER, camera) if PLACEHOLDER in image_topic
                                       else "")
        info = given.get("camera_info") or (camera_info_topic.replace(PLACEHOLDER, camera)
                                            if PLACEHOLDER in camera_info_topic else "")
        remaps += _camera_remaps(f"{camera}/", image, info)
    return remaps


def _camera_remaps(prefix: str, image: str, info: str) -> list[tuple[str, str]]:
    remaps = []
    if image:
        remaps += [(f"{prefix}image", image), (f"{prefix}image/compressed", f"{image.rstrip('/')}/compressed")]
    if info:
        remaps.append((f"{prefix}camera_info", info))
    return remaps


def plan_node(arguments: dict[str, str]) -> NodePlan:
    """The `NodePlan` of depth.launch.py's arguments (the values of `PLAN_ARGUMENTS`, as launch gives them)."""
    managed = parse_flag("managed", arguments["managed"])
    autostart = parse_flag("autostart", arguments["autostart"])
    respawn = parse_flag("respawn", arguments["respawn"])
    try:
        respawn_delay = float(arguments["respawn_delay"] or 0.0)
    except ValueError:
        raise LaunchArgumentError(f"respawn_delay:={arguments['respawn_delay']!r} is not a number of seconds") from None
    if respawn_delay < 0:
        raise LaunchArgumentError(f"respawn_delay:={respawn_delay:g} must not be negative")
    given = parse_cameras(arguments["cameras"])
    cameras = given or cameras_of_params_file(arguments["params_file"])
    file_topics = read_remappings_file(arguments["remappings_file"], cameras)
    remappings = input_remappings(cameras, arguments["image_topic"], arguments["camera_info_topic"], file_topics)
    executable = MANAGED_EXECUTABLE if managed else PLAIN_EXECUTABLE
    return NodePlan(executable, managed, autostart, respawn, respawn_delay, given or None, tuple(remappings),
                    _summary(executable, managed, autostart, respawn, cameras, remappings))


def node_parameters(plan: NodePlan) -> list[dict[str, list[str]]]:
    """The `parameters` of depth.launch.py's node: `cameras` as a list of names when the `cameras` argument gives
    them, else none (the params file's value stays). launch_ros writes the dict into a params file given to the
    node after the global parameters, so it wins over the params_file's `cameras`."""
    return [{"cameras": list(plan.cameras)}] if plan.cameras else []


def _summary(executable: str, managed: bool, autostart: bool, respawn: bool, cameras: tuple[str, ...],
             remappings: list[tuple[str, str]]) -> str:
    mode = ("managed (lifecycle), " + ("configured and activated by this launch" if autostart else
                                       "waiting for a lifecycle manager")) if managed else "plain"
    inputs = ", ".join(f"{source} <- {target}" for source, target in remappings
                       if not source.endswith("/compressed")) or "relative topics"
    unmapped = [camera for camera in cameras if not any(s.startswith(f"{camera}/") for s, _ in remappings)]
    if unmapped:
        inputs += f"; {', '.join(unmapped)}: relative topics"
    restart = "respawns on exit" if respawn else "its exit ends the launch"
    return f"{executable}: {mode}; {restart}; cameras: {', '.join(cameras) or '(one)'}; inputs: {inputs}"


def node_exit_reason(name: str, returncode: Optional[int]) -> str:
    """Why the launch ends after the depth node exited (the Shutdown reason and the launch's log line)."""
    if returncode == 0:
        return f"{name} exited (code 0): shutting down the launch"
    if returncode is not None and returncode < 0:
        return f"{name} was killed by signal {-returncode}: shutting down the launch"
    return (f"{name} exited with code {returncode} (a fatal start-up error: missing checkpoint, invalid parameter; "
            "its reason is in the lines above): shutting down the launch")


def player_exit_reason(returncode: Optional[int]) -> str:
    """Why the replay ends after `ros2 bag play` exited."""
    if returncode == 0:
        return "the bag player finished (the bag ended, exit code 0): shutting down the replay"
    return (f"the bag player exited with code {returncode} (bag not found or unreadable, or `ros2 bag` not "
            "installed: see its output above): shutting down the replay")

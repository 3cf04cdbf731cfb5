"""What depth.launch.py starts, decided by `plan_node` from its arguments (ROS- and launch-free): the plain or
managed executable, the remappings of one camera or of each of several (`{camera}` placeholder, remappings file,
cameras from the params file), the node's own parameters (`cameras`) and what launch_ros makes of them, respawn, and
the reasons the launches give when a process exits."""

from __future__ import annotations

import pytest
import yaml

from dav2_ros.bringup.launch_plan import (PLAN_ARGUMENTS, LaunchArgumentError, node_exit_reason, node_parameters,
                                          parse_cameras, parse_flag, plan_node, player_exit_reason)
from dav2_ros.pipeline.settings import check_value
from project_paths import CONFIG_DIR

DEFAULTS = {"cameras": "", "params_file": str(CONFIG_DIR / "depth.yaml"), "image_topic": "/camera/image_raw",
            "camera_info_topic": "/camera/camera_info", "remappings_file": "", "managed": "false",
            "autostart": "false", "respawn": "false", "respawn_delay": "2.0"}


def plan(**arguments):
    return plan_node({**DEFAULTS, **arguments})


def test_defaults_are_the_plain_node_on_one_camera_that_ends_the_launch_when_it_exits():
    assert set(DEFAULTS) == set(PLAN_ARGUMENTS)
    result = plan()
    assert (result.executable, result.managed, result.respawn, result.cameras) == ("depth_node", False, False, None)
    assert result.remappings == (("image", "/camera/image_raw"), ("image/compressed", "/camera/image_raw/compressed"),
                                 ("camera_info", "/camera/camera_info"))
    assert "its exit ends the launch" in result.summary


def test_two_cameras_from_the_argument_with_the_camera_placeholder():
    result = plan(cameras="front,rear", image_topic="/{camera}/color/image_raw",
                  camera_info_topic="/{camera}/color/camera_info")
    assert result.cameras == ("front", "rear")
    assert dict(result.remappings) == {
        "front/image": "/front/color/image_raw", "front/image/compressed": "/front/color/image_raw/compressed",
        "front/camera_info": "/front/color/camera_info",
        "rear/image": "/rear/color/image_raw", "rear/image/compressed": "/rear/color/image_raw/compressed",
        "rear/camera_info": "/rear/color/camera_info"}
    assert "front/image <- /front/color/image_raw" in result.summary


def test_two_cameras_from_the_params_file_and_a_remappings_file(tmp_path):
    remaps = tmp_path / "remaps.yaml"
    remaps.write_text("front:\n  image: /cam_front/image_raw\n  camera_info: /cam_front/info\n"
                      "rear:\n  image: /cam_rear/image_raw\n")
    result = plan(params_file=str(CONFIG_DIR / "two_cameras.yaml"), remappings_file=str(remaps),
                  camera_info_topic="/{camera}/camera_info")
    assert result.cameras is None  # the params file's cameras parameter stays as it is
    assert dict(result.remappings) == {
        "front/image": "/cam_front/image_raw", "front/image/compressed": "/cam_front/image_raw/compressed",
        "front/camera_info": "/cam_front/info",  # the file wins over the placeholder
        "rear/image": "/cam_rear/image_raw", "rear/image/compressed": "/cam_rear/image_raw/compressed",
        "rear/camera_info": "/rear/camera_info"}


def test_several_cameras_without_placeholder_or_file_keep_their_relative_topics_and_say_so():
    result = plan(cameras="[front, rear]")
    assert result.remappings == ()
    assert "front, rear: relative topics" in result.summary


# The README's two-camera command, alone and with a remappings file.
README_TWO_CAMERAS = {"cameras": "front,rear", "image_topic": "/{camera}/image_raw",
                      "camera_info_topic": "/{camera}/camera_info"}


def _with_remappings_file(tmp_path) -> dict[str, str]:
    remaps = tmp_path / "remaps.yaml"
    remaps.write_text("front:\n  image: /cam_front/image_raw\n")
    return {**README_TWO_CAMERAS, "remappings_file": str(remaps)}


class _RclLikeLoader(yaml.SafeLoader):
    """Reads a params file as rcl does for what these tests write: a sequence is an array whatever its tag
    (rcl_yaml_param_parser's parse_file_events ignores the `!!python/tuple` that PyYAML's yaml.dump puts on a
    tuple)."""


_RclLikeLoader.add_constructor("tag:yaml.org,2002:python/tuple", _RclLikeLoader.construct_sequence)


def _launch_ros_value(value):
    """A list of strings as launch_ros evaluates it (normalize_parameter_dict: each item yaml.dump'ed;
    evaluate_parameter_dict: each yaml.safe_load'ed, the list made a tuple)."""
    return tuple(yaml.safe_load(yaml.dump(item)) for item in value)


@pytest.mark.parametrize("with_file", [False, True], ids=["placeholder", "placeholder+remappings_file"])
def test_the_readme_two_cameras_reach_the_node_as_a_string_array(tmp_path, with_file):
    arguments = _with_remappings_file(tmp_path) if with_file else README_TWO_CAMERAS
    result = plan(**arguments)
    parameters = node_parameters(result)
    assert parameters == [{"cameras": ["front", "rear"]}]
    # The params file launch_ros's Node writes for this dict (_create_params_file_from_dict), as rcl reads it.
    evaluated = {name: _launch_ros_value(value) for name, value in parameters[0].items()}
    written = yaml.dump({"/depth_node": {"ros__parameters": evaluated}}, default_flow_style=False)
    assert "cameras: !!python/tuple\n    - front\n    - rear\n" in written
    cameras = yaml.load(written, Loader=_RclLikeLoader)["/depth_node"]["ros__parameters"]["cameras"]
    assert cameras == ["front", "rear"] and check_value("cameras", cameras) is None
    assert yaml.safe_load(yaml.safe_dump(parameters[0])) == {"cameras": ["front", "rear"]}
    if with_file:
        assert dict(result.remappings)["front/image"] == "/cam_front/image_raw"  # the file wins
        assert dict(result.remappings)["rear/image"] == "/rear/image_raw"


def test_a_set_parameter_with_the_list_would_give_the_node_one_string():
    """Why the cameras are not a SetParameter: launch_ros puts SetParameter's evaluated value on the command line
    with an f-string (Node._perform_substitutions: `-p {name}:={value}`), the text of a Python tuple that rcl reads
    as a plain string, which the node refuses (the issue's error)."""
    rule = f"cameras:={_launch_ros_value(['front', 'rear'])}"
    assert rule == "cameras:=('front', 'rear')"
    value = yaml.safe_load(rule.split(":=", 1)[1])
    assert check_value("cameras", value) == "expected a list of camera names, got str"


def test_no_node_parameters_without_the_cameras_argument():
    assert node_parameters(plan()) == []
    assert node_parameters(plan(params_file=str(CONFIG_DIR / "two_cameras.yaml"))) == []  # the file's cameras stay


@pytest.mark.parametrize("text", ["front,y", "N,rear", "nan,rear", "front,Inf", "front,infinity"])
def test_camera_names_rcl_reads_as_booleans_or_numbers_are_refused(text):
    with pytest.raises(LaunchArgumentError, match="ROS reads .* in a parameters file as a (boolean|number)"):
        plan(cameras=text)


def test_camera_names_pyyaml_quotes_are_kept():
    result = plan(cameras="on,null,yes")
    assert node_parameters(result) == [{"cameras": ["on", "null", "yes"]}]
    assert _launch_ros_value(["on", "null", "yes"]) == ("on", "null", "yes")


@pytest.mark.parametrize("arguments, reason", [
    ({"cameras": "front,front"}, "distinct"),
    ({"cameras": "2nd"}, "not a relative namespace"),
    ({"image_topic": "/{camera}/image_raw"}, "needs several cameras"),
    ({"managed": "maybe"}, "managed:='maybe' is not a boolean"),
    ({"respawn_delay": "soon"}, "not a number of seconds"),
    ({"respawn_delay": "-1"}, "must not be negative"),
    ({"params_file": "/nonexistent/params.yaml"}, "cannot read params file"),
])
def test_unusable_arguments_are_refused_with_the_reason(arguments, reason):
    with pytest.raises(LaunchArgumentError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        plan(**arguments)


@pytest.mark.parametrize("content, reason", [
    ("side:\n  image: /x\n", "'side' is not one of the node's cameras"),
    ("front:\n  depth: /x\n", "expected image and/or camera_info"),
    ("- front\n", "expected camera names mapped"),
])
def test_unusable_remappings_files_are_refused(tmp_path, content, reason):
    remaps = tmp_path / "remaps.yaml"
    remaps.write_text(content)
    with pytest.raises(LaunchArgumentError, match=reason):
        plan(cameras="front,rear", remappings_file=str(remaps))


def test_a_remappings_file_needs_several_cameras(tmp_path):
    remaps = tmp_path / "remaps.yaml"
    remaps.write_text("front:\n  image: /x\n")
    with pytest.raises(LaunchArgumentError, match="one camera"):
        plan(remappings_file=str(remaps))


def test_managed_autostart_and_respawn():
    result = plan(managed="true", autostart="1", respawn="yes", respawn_delay="5")
    assert (result.executable, result.managed, result.autostart, result.respawn, result.respawn_delay) == \
        ("managed_depth_node", True, True, True, 5.0)
    assert "configured and activated by this launch" in result.summary and "respawns on exit" in result.summary
    assert "waiting for a lifecycle manager" in plan(managed="true").summary


@pytest.mark.parametrize("text, names", [("", ()), ("front", ("front",)), ("front,rear", ("front", "rear")),
                                         ("[front, rear]", ("front", "rear")), ("['a', 'b/c']", ("a", "b/c"))])
def test_parse_cameras(text, names):
    assert parse_cameras(text) == names


@pytest.mark.parametrize("text, value", [("true", True), ("True", True), ("1", True), ("false", False), ("", False)])
def test_parse_flag(text, value):
    assert parse_flag("respawn", text) is value


def test_exit_reasons_name_the_code_and_the_likely_cause():
    assert "exited with code 1" in node_exit_reason("depth_node", 1) and "checkpoint" in node_exit_reason("n", 1)
    assert "killed by signal 9" in node_exit_reason("depth_node", -9)
    assert "shutting down the launch" in node_exit_reason("depth_node", 0)
    assert "the bag ended" in player_exit_reason(0)
    assert "code 2" in player_exit_reason(2) and "ros2 bag" in player_exit_reason(2)

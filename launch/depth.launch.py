"""Starts dav2_ros's depth_node on a camera (or several), plain or managed (lifecycle).

    ros2 launch dav2_ros depth.launch.py image_topic:=/camera/image_raw camera_info_topic:=/camera/camera_info
    ros2 launch dav2_ros depth.launch.py params_file:=$(ros2 pkg prefix dav2_ros)/share/dav2_ros/config/outdoor.yaml
    # two cameras, each read from /<name>/image_raw and /<name>/camera_info
    ros2 launch dav2_ros depth.launch.py cameras:=front,rear image_topic:=/{camera}/image_raw \
        camera_info_topic:=/{camera}/camera_info
    # managed (lifecycle) node, configured and activated here (leave autostart false for a lifecycle manager)
    ros2 launch dav2_ros depth.launch.py managed:=true autostart:=true
    # clouds and depth images over shared memory, unfragmented (consumers: docs/large_data.md)
    ros2 launch dav2_ros depth.launch.py large_data:=true

Parameters come from `params_file` (default: the package's config/depth.yaml; presets indoor.yaml,
outdoor.yaml, relative.yaml, two_cameras.yaml); the model arguments below override it only when given (empty =
keep the file's value). Inputs are remapped onto the node's relative names (`image`, `image/compressed`,
`camera_info`; `<camera>/...` for each of several cameras, see dav2_ros/bringup/launch_plan.py); outputs are
`depth/image`, `depth/camera_info`, `points`, `depth/colored` (under `<camera>/` with several cameras).

When the node exits (a fatal start-up error such as a missing checkpoint or an invalid parameter, or a crash) the
launch shuts down and says why, unless `respawn` is true. The node's actions are built by `_depth_node` from the
declared arguments only (an OpaqueFunction, because the number of remappings depends on the cameras); the
decisions are the plain function `plan_node`, tested without launch.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, GroupAction, LogInfo, OpaqueFunction,
                            RegisterEventHandler, Shutdown)
from launch.event_handlers import OnProcessExit, OnProcessStart
from launch.events import matches_action
from launch.events.process import ProcessExited
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node, SetParameter, SetParametersFromFile
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

from dav2_ros.bringup.launch_plan import PLAN_ARGUMENTS, node_exit_reason, node_parameters, plan_node

try:  # Iron and later
    from launch.conditions import IfCondition
    from launch.substitutions import NotEqualsSubstitution

    def _given(name: str) -> IfCondition:
        """True when the launch argument `name` is not empty."""
        return IfCondition(NotEqualsSubstitution(LaunchConfiguration(name), ""))

except ImportError:  # Humble: the same test with the condition it offers
    from launch.conditions import LaunchConfigurationNotEquals

    def _given(name: str) -> LaunchConfigurationNotEquals:
        """True when the launch argument `name` is not empty."""
        return LaunchConfigurationNotEquals(name, "")


# Launch arguments that override a node parameter of the same name when not empty.
MODEL_ARGUMENTS = {
    "encoder": "Backbone: vits | vitb | vitl (empty: from params_file).",
    "model_type": "metric (meters) | relative (inverse depth, depth/relative) (empty: from params_file).",
    "input_size": "Model input resolution, a multiple of 14 in [70, 1540], e.g. 518 or 308 (empty: from params_file).",
    "checkpoint": "Checkpoint file (.pth or .safetensors) (empty: from params_file, whose default is the official "
                  "file in the weights folder).",
    "device": "auto | cpu | cuda | cuda:N (empty: from params_file).",
    "backend": "auto | torch | openvino (CPU) | onnxruntime (empty: from params_file).",
    "precision": "auto | fp32 | fp16 | bf16 | int8 (CPU) (empty: from params_file).",
    "input_transport": "raw (subscribe to image_topic) | compressed (to image_topic/compressed) "
                       "(empty: from params_file).",
}

# How the node is run and where its inputs come from (read by `plan_node`).
BRINGUP_ARGUMENTS = {
    "cameras": ("", "Several cameras in one node, e.g. front,rear (empty: the params_file's cameras parameter, by "
                    "default one camera)."),
    "remappings_file": ("", "YAML file giving each camera's input topics (camera: {image: ..., camera_info: ...}); "
                            "empty: none."),
    "managed": ("false", "true: run managed_depth_node, the lifecycle (managed) variant, which starts unconfigured."),
    "autostart": ("false", "With managed true: configure and activate the node from this launch (leave false when a "
                           "lifecycle manager brings it up)."),
    "respawn": ("false", "true: restart the node whenever it exits (production robots); false: its exit ends the "
                         "launch."),
    "respawn_delay": ("2.0", "Seconds to wait before restarting the node (with respawn true)."),
    "large_data": ("false", "true: the node's process runs with large_data_profile and "
                            "ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT (shared memory only, clouds sent whole "
                            "instead of 64 KB fragments); every consumer needs the same two variables "
                            "(docs/large_data.md)."),
    "large_data_profile": ("", "Fast DDS profile used with large_data true (empty: the package's "
                               "config/fastdds_large_data.xml)."),
}


def generate_launch_description() -> LaunchDescription:
    """The depth node with its arguments, remappings, parameters file, logging level and exit handling."""
    default_params = PathJoinSubstitution([FindPackageShare("dav2_ros"), "config", "depth.yaml"])
    arguments = [
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Parameters file for depth_node (presets in share/dav2_ros/config: "
                                          "depth.yaml, indoor.yaml, outdoor.yaml, relative.yaml, two_cameras.yaml)."),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node and of its output topics."),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="Camera image topic (sensor_msgs/Image); with input_transport "
                                          "compressed, its /compressed sibling is used. With several cameras, "
                                          "{camera} stands for each camera's name (e.g. /{camera}/image_raw)."),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera_info",
                              description="CameraInfo topic of that camera ({camera} as in image_topic)."),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="Use /clock (true when replaying a bag with --clock)."),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="Logging level: debug | info | warn | error | fatal."),
    ]
    arguments += [DeclareLaunchArgument(name, default_value=default, description=text)
                  for name, (default, text) in BRINGUP_ARGUMENTS.items()]
    arguments += [DeclareLaunchArgument(name, default_value="", description=text)
                  for name, text in MODEL_ARGUMENTS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=_depth_node)])


def _depth_node(context: LaunchContext) -> list:
    """The node (plain or managed), its parameters, its exit handling and, with autostart, its transitions; from
    the declared arguments only (`plan_node` decides, see dav2_ros/bringup/launch_plan.py)."""
    plan = plan_node({name: LaunchConfiguration(name).perform(context) for name in PLAN_ARGUMENTS})
    node_action = LifecycleNode if plan.managed else Node
    # `cameras` (a list) goes in the node's own parameters, never in a SetParameter. launch_ros (Humble, Jazzy,
    # Kilted) evaluates a list value to a tuple, and the global parameters of SetParameter reach the command line
    # as the f-string `-p {name}:={value}`: `-p cameras:=('front', 'rear')`, one string to rcl. A dict in
    # `parameters` is written by Node into a temporary params file (yaml.dump under the node's full name; rcl reads
    # its `!!python/tuple` sequence as a string array, it ignores the tag) passed with --params-file after the
    # global parameters (SetParametersFromFile, SetParameter), so it overrides the params_file's `cameras`.
    node = node_action(
        package="dav2_ros",
        executable=plan.executable,
        name="depth_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        remappings=list(plan.remappings),
        parameters=node_parameters(plan),
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        respawn=plan.respawn,
        respawn_delay=plan.respawn_delay,
        additional_env=_large_data_env(context),
    )
    overrides = [SetParameter(name=name, value=LaunchConfiguration(name), condition=_given(name))
                 for name in MODEL_ARGUMENTS]
    # The event handlers first (as launch_ros's lifecycle examples do), so none of the node's events is missed.
    actions = [LogInfo(msg=plan.summary)]
    if not plan.respawn:
        actions.append(RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_node_exited)))
    if plan.managed and plan.autostart:
        actions += _autostart(node)
    # Scoped: the file and the overrides apply to this node only, in this order (later wins; the node's own
    # parameters, `cameras`, come after them).
    actions.append(GroupAction([
        SetParametersFromFile(LaunchConfiguration("params_file")),
        *overrides,
        SetParameter(name="use_sim_time", value=LaunchConfiguration("use_sim_time")),
        node,
    ]))
    return actions


def _large_data_env(context: LaunchContext):
    """With large_data true, the node's environment for config/fastdds_large_data.xml (docs/large_data.md): the
    profile file, and SYSTEM_DEFAULT because with LOCALHOST rmw_fastrtps appends its own SHM and UDP transports,
    whose 64 KB limit fragments every sample. None (the launch's environment) otherwise."""
    large_data = LaunchConfiguration("large_data").perform(context).strip().lower()
    if large_data not in ("true", "false"):
        raise ValueError(f"large_data must be true or false, got {large_data!r}")
    if large_data == "false":
        return None
    profile = LaunchConfiguration("large_data_profile").perform(context).strip() or \
        PathJoinSubstitution([FindPackageShare("dav2_ros"), "config", "fastdds_large_data.xml"])
    return {"FASTDDS_DEFAULT_PROFILES_FILE": profile, "ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT"}


def _node_exited(event: ProcessExited, context: LaunchContext) -> list:
    """The node exited: say why and end the launch (nothing to add when the launch is already shutting down)."""
    if context.is_shutdown:
        return []
    reason = node_exit_reason("depth_node", event.returncode)
    return [LogInfo(msg=reason), Shutdown(reason=reason)]


def _autostart(node: LifecycleNode) -> list:
    """configure once the process runs, activate once configured (launch_ros's lifecycle events, as its
    lifecycle_pub_sub example does; works on Humble, Jazzy and Kilted alike)."""
    def transition(transition_id: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id))

    return [
        RegisterEventHandler(OnProcessStart(target_action=node,
                                            on_start=[transition(Transition.TRANSITION_CONFIGURE)])),
        RegisterEventHandler(OnStateTransition(target_lifecycle_node=node, start_state="configuring",
                                               goal_state="inactive",
                                               entities=[transition(Transition.TRANSITION_ACTIVATE)])),
    ]

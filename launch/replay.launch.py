"""Replays a rosbag2 into dav2_ros's depth_node on simulated time.

    ros2 launch dav2_ros replay.launch.py bag:=/path/to/bag image_topic:=/camera/image_raw \
        camera_info_topic:=/camera/camera_info

`ros2 bag play --clock` publishes /clock from the bag's timestamps and the node runs with
use_sim_time true, so its outputs line up with the recording. Playback starts `play_delay` seconds
after launch, once the model is loaded and warmed up. The other arguments are depth.launch.py's.

The replay ends when the player exits, saying why: the bag ended (code 0), or the player failed (the bag was not
found, `ros2 bag` is not installed: its error is shown above). It also ends when depth_node exits fatally.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import (DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, LogInfo,
                            RegisterEventHandler, Shutdown, TimerAction)
from launch.event_handlers import OnProcessExit
from launch.events.process import ProcessExited
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from dav2_ros.bringup.launch_plan import player_exit_reason

# depth.launch.py arguments passed through unchanged (use_sim_time is forced to true).
PASSED_THROUGH = {
    "params_file": (PathJoinSubstitution([FindPackageShare("dav2_ros"), "config", "depth.yaml"]),
                    "Parameters file for depth_node (see depth.launch.py)."),
    "namespace": ("", "Namespace of the node and of its output topics."),
    "image_topic": ("/camera/image_raw", "Camera image topic in the bag (sensor_msgs/Image, or the base name "
                                         "of its /compressed sibling with input_transport compressed)."),
    "camera_info_topic": ("/camera/camera_info", "CameraInfo topic in the bag."),
    "log_level": ("info", "Logging level of depth_node: debug | info | warn | error | fatal."),
    "encoder": ("", "vits | vitb | vitl (empty: from params_file)."),
    "model_type": ("", "metric | relative (empty: from params_file)."),
    "input_size": ("", "Model input resolution, a multiple of 14 (empty: from params_file)."),
    "checkpoint": ("", "Checkpoint file (empty: from params_file)."),
    "device": ("", "auto | cpu | cuda | cuda:N (empty: from params_file)."),
    "backend": ("", "auto | torch | openvino (CPU) | onnxruntime (empty: from params_file)."),
    "precision": ("", "auto | fp32 | fp16 | bf16 | int8 (CPU) (empty: from params_file)."),
    "input_transport": ("", "raw | compressed (empty: from params_file)."),
    "cameras": ("", "Several cameras in one node, e.g. front,rear (see depth.launch.py; empty: from params_file)."),
    "remappings_file": ("", "YAML file giving each camera's input topics (see depth.launch.py); empty: none."),
    "managed": ("false", "true: run the lifecycle (managed) variant of the node."),
    "autostart": ("true", "With managed true: configure and activate the node from this launch."),
}


def generate_launch_description() -> LaunchDescription:
    """`ros2 bag play --clock` after a delay, plus depth.launch.py with use_sim_time true."""
    arguments = [
        DeclareLaunchArgument("bag", description="The rosbag2 to play (folder or .mcap/.db3 file)."),
        DeclareLaunchArgument("rate", default_value="1.0", description="Playback rate (1.0 = real time)."),
        DeclareLaunchArgument("play_delay", default_value="5.0",
                              description="Seconds to wait before playing, so the model is loaded first."),
    ]
    arguments += [DeclareLaunchArgument(name, default_value=default, description=text)
                  for name, (default, text) in PASSED_THROUGH.items()]

    depth = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("dav2_ros"), "launch",
                                                            "depth.launch.py"])),
        launch_arguments=[(name, LaunchConfiguration(name)) for name in PASSED_THROUGH]
        + [("use_sim_time", "true")],
    )
    play = ExecuteProcess(
        cmd=["ros2", "bag", "play", LaunchConfiguration("bag"), "--clock", "--rate", LaunchConfiguration("rate")],
        output="screen",
    )
    return LaunchDescription(arguments + [
        RegisterEventHandler(OnProcessExit(target_action=play, on_exit=_player_exited)),
        depth,
        TimerAction(period=LaunchConfiguration("play_delay"), actions=[play]),
    ])


def _player_exited(event: ProcessExited, context: LaunchContext) -> list:
    """The player exited: say why and end the replay (nothing to add when the launch is already shutting down)."""
    if context.is_shutdown:
        return []
    reason = player_exit_reason(event.returncode)
    return [LogInfo(msg=reason), Shutdown(reason=reason)]

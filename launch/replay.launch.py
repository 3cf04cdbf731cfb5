"""Replays a rosbag2 into dav2_ros's depth_node on simulated time.

    ros2 launch dav2_ros replay.launch.py bag:=/path/to/bag image_topic:=/camera/image_raw \
        camera_info_topic:=/camera/camera_info

`ros2 bag play --clock` publishes /clock from the bag's timestamps and the node runs with
use_sim_time true, so its outputs line up with the recording. Playback starts `play_delay` seconds
after launch, once the model is loaded and warmed up. The other arguments are depth.launch.py's.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, TimerAction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

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
        depth,
        TimerAction(period=LaunchConfiguration("play_delay"), actions=[play]),
    ])

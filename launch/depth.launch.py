"""Starts dav2_ros's depth_node on a camera.

    ros2 launch dav2_ros depth.launch.py image_topic:=/camera/image_raw camera_info_topic:=/camera/camera_info
    ros2 launch dav2_ros depth.launch.py params_file:=$(ros2 pkg prefix dav2_ros)/share/dav2_ros/config/outdoor.yaml

Parameters come from `params_file` (default: the package's config/depth.yaml; presets indoor.yaml,
outdoor.yaml, relative.yaml); the model arguments below override it only when given (empty = keep
the file's value). Topics are remapped onto the node's relative names `image`, `image/compressed`
and `camera_info`; outputs are `depth/image`, `depth/camera_info`, `points`, `depth/colored`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, SetParameter, SetParametersFromFile
from launch_ros.substitutions import FindPackageShare

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


def generate_launch_description() -> LaunchDescription:
    """The depth node with its arguments, remappings, parameters file and logging level."""
    default_params = PathJoinSubstitution([FindPackageShare("dav2_ros"), "config", "depth.yaml"])
    image_topic = LaunchConfiguration("image_topic")

    arguments = [
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Parameters file for depth_node (presets in share/dav2_ros/config: "
                                          "depth.yaml, indoor.yaml, outdoor.yaml, relative.yaml)."),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node and of its output topics."),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="Camera image topic (sensor_msgs/Image); with input_transport "
                                          "compressed, its /compressed sibling is used."),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera_info",
                              description="CameraInfo topic of that camera."),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="Use /clock (true when replaying a bag with --clock)."),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="Logging level: debug | info | warn | error | fatal."),
    ]
    arguments += [DeclareLaunchArgument(name, default_value="", description=text)
                  for name, text in MODEL_ARGUMENTS.items()]

    overrides = [SetParameter(name=name, value=LaunchConfiguration(name), condition=_given(name))
                 for name in MODEL_ARGUMENTS]

    node = Node(
        package="dav2_ros",
        executable="depth_node",
        name="depth_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        remappings=[
            ("image", image_topic),
            ("image/compressed", [image_topic, "/compressed"]),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )

    return LaunchDescription(arguments + [
        # Scoped: the file and the overrides apply to this node only, in this order (later wins).
        GroupAction([
            SetParametersFromFile(LaunchConfiguration("params_file")),
            *overrides,
            SetParameter(name="use_sim_time", value=LaunchConfiguration("use_sim_time")),
            node,
        ]),
    ])

"""dav2_ros: Depth Anything V2 monocular depth for ROS 2 (metric depth image + point cloud).

Subpackages: `model` (PyTorch only), `geometry` and `conversions` (numpy only),
`processing` (ROS-free per-frame pipeline), `node` (rclpy wiring), `offline` (rosbag tools),
`weights` (checkpoint cache and download), `cli` (console scripts).
"""

__version__ = "0.1.0"

"""ROS message layouts <-> numpy arrays, duck-typed so rclpy and rosbags messages both work."""

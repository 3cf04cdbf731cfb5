"""Console scripts (also reachable as `ros2 run dav2_ros <name>`)."""

"""What the launch files start, decided from their arguments by plain functions (no launch import here), so the
logic is tested without a ROS distro and the launch files keep only the launch API calls."""

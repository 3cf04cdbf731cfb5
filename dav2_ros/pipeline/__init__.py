"""The ROS-free frame path and its start-up: settings, the builders of estimator and processor, the per-frame
processing and the outputs it gives. Used by the node (rclpy wiring) and the offline tools alike."""

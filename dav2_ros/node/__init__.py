"""The rclpy node: parameters, subscriptions, worker thread, publishers, diagnostics."""

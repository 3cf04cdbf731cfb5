"""Camera geometry in numpy: intrinsics, back-projection, colorization. No ROS, no torch."""

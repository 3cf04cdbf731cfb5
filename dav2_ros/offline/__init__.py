"""Offline rosbag tools: bag-to-depth and ground-truth evaluation."""

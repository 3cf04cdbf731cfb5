"""Depth Anything V2 in plain PyTorch: network, checkpoint loading, preprocessing, estimator."""

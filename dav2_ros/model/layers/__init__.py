"""DINOv2 building blocks, one small module per layer."""

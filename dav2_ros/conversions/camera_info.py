"""CameraInfo fields for the depth image: the pinhole intrinsics it was back-projected with, nothing else.

The depth image is treated as rectified, so the published CameraInfo has zero distortion, an
identity R and ``P = [K | 0]``: depth_image_proc (which projects with P) and any consumer that reads
K then see exactly the geometry this package used for its point cloud.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dav2_ros.geometry.intrinsics import Intrinsics


def camera_info_fields(intr: Intrinsics) -> dict[str, Any]:
    """CameraInfo fields (``CameraInfo(header=h, **fields)``) for an image described by ``intr``.

    Arrays are float64 numpy arrays, which both rclpy and rosbags message classes accept.
    """
    return {
        "width": intr.width,
        "height": intr.height,
        "distortion_model": "plumb_bob",
        "d": np.zeros(5, dtype=np.float64),
        "k": np.array(intr.k_matrix(), dtype=np.float64),
        "r": np.eye(3, dtype=np.float64).reshape(9),
        "p": np.array(intr.p_matrix(), dtype=np.float64),
        "binning_x": 0,
        "binning_y": 0,
    }

"""Organized sensor_msgs/PointCloud2 fields in depth_image_proc's exact byte layout, built with numpy.

Layout (verified against the sources): depth_image_proc's ``point_cloud_xyz`` calls
``PointCloud2Modifier::setPointCloud2FieldsByString(1, "xyz")`` and ``point_cloud_xyzrgb`` calls
``setPointCloud2FieldsByString(2, "xyz", "rgb")`` (ros-perception/image_pipeline,
depth_image_proc/src/point_cloud_xyz{,rgb}.cpp). In ros2/common_interfaces
sensor_msgs/include/sensor_msgs/impl/point_cloud2_iterator.hpp, ``"xyz"`` adds x, y, z FLOAT32 at
offsets 0, 4, 8 and then 4 bytes of padding; ``"rgb"`` adds one FLOAT32 field at the current
offset and then 12 bytes of padding. Hence:

* xyz:    x@0 y@4 z@8 (+4 pad)                    point_step 16
* xyzrgb: x@0 y@4 z@8 (+4 pad) rgb@16 (+12 pad)   point_step 32

``rgb`` is a FLOAT32 whose bits are the uint32 ``0x00RRGGBB`` (PCL's packing): in little-endian
byte order b, g, r, 0 -- the offsets ``PointCloud2Iterator`` uses for its "b", "g", "r" pseudo
fields. Padding bytes are zero. ``is_bigendian`` is False, so on a big-endian host the floats are
byte-swapped to little-endian (never the case on x86/ARM robots, but the message stays truthful).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from dav2_ros.conversions.buffers import zeroed_byte_array

#: sensor_msgs/PointField datatype constant for FLOAT32.
FLOAT32 = 7


class FieldSpec(NamedTuple):
    """One PointField's values; the caller builds ``PointField(name=, offset=, datatype=, count=)``."""

    name: str
    offset: int
    datatype: int
    count: int


XYZ_FIELDS = (FieldSpec("x", 0, FLOAT32, 1), FieldSpec("y", 4, FLOAT32, 1), FieldSpec("z", 8, FLOAT32, 1))
RGB_FIELD = FieldSpec("rgb", 16, FLOAT32, 1)
XYZ_POINT_STEP = 16
XYZRGB_POINT_STEP = 32


def pointcloud_fields(xyz: np.ndarray, rgb: np.ndarray | None = None) -> dict[str, Any]:
    """PointCloud2 fields for an organized cloud: ``height x width`` points, NaN points kept (is_dense False).

    Args:
        xyz: (h, w, 3) float32 points in the optical frame (meters), NaN where invalid.
        rgb: optional (h, w, 3) uint8 colors in **BGR** order (OpenCV's), same h and w.

    Returns:
        dict(height, width, fields=[FieldSpec], is_bigendian=False, point_step, row_step,
        data=array('B'), is_dense=False).
    """
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f"xyz must have shape (h, w, 3), got {xyz.shape}")
    height, width = xyz.shape[:2]
    if rgb is not None and (rgb.shape != (height, width, 3) or rgb.dtype != np.uint8):
        raise ValueError(f"rgb must be uint8 of shape {(height, width, 3)}, got {rgb.dtype} {rgb.shape}")
    point_step = XYZRGB_POINT_STEP if rgb is not None else XYZ_POINT_STEP
    # Write straight into the message's zeroed byte container (padding stays zero): no second copy.
    data = zeroed_byte_array(height * width * point_step)
    np.frombuffer(data, dtype="<f4").reshape(height, width, point_step // 4)[..., :3] = xyz
    fields = list(XYZ_FIELDS)
    if rgb is not None:
        # Little-endian 0x00RRGGBB is the bytes b, g, r, 0: exactly the BGR pixel, copied as bytes.
        np.frombuffer(data, dtype=np.uint8).reshape(height, width, point_step)[..., 16:19] = rgb
        fields.append(RGB_FIELD)
    return {
        "height": height,
        "width": width,
        "fields": fields,
        "is_bigendian": False,
        "point_step": point_step,
        "row_step": point_step * width,
        "data": data,
        "is_dense": False,
    }


def pack_rgb(bgr: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 BGR colors as uint32 ``0x00RRGGBB`` (reinterpret as float32 for the ``rgb`` field)."""
    channels = bgr.astype(np.uint32)
    return (channels[..., 2] << 16) | (channels[..., 1] << 8) | channels[..., 0]

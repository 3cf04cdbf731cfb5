"""Organized sensor_msgs/PointCloud2 fields, built with numpy in one pass, in one of two byte layouts.

``compact`` (the node's default): x, y, z FLOAT32 at offsets 0, 4, 8, point_step 12; with color, ``rgb`` FLOAT32 at
12 and point_step 16 -- the ZED wrapper's layout, half the bytes of depth_image_proc's colored cloud. Consumers read
fields by name (Nav2's observation buffer and STVL, PCL's ``fromROSMsg``, sensor_msgs_py's ``read_points``, RViz).

``depth_image_proc``: depth_image_proc's exact layout (verified against the sources): its ``point_cloud_xyz`` calls
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

The bytes are written once, straight into the message's ``array('B')``: a fresh zeroed one, or one a
``ReusedByteArrays`` hands out again (the node: no per-frame allocation of ~15-30 MB).
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, get_args

import numpy as np

from dav2_ros.conversions.buffers import ReusedByteArrays, zeroed_byte_array

#: sensor_msgs/PointField datatype constant for FLOAT32.
FLOAT32 = 7

#: The byte layouts `pointcloud_fields` writes (the node's `cloud_layout` parameter).
CloudLayout = Literal["compact", "depth_image_proc"]
CLOUD_LAYOUTS: tuple[CloudLayout, ...] = get_args(CloudLayout)


class FieldSpec(NamedTuple):
    """One PointField's values; the caller builds ``PointField(name=, offset=, datatype=, count=)``."""

    name: str
    offset: int
    datatype: int
    count: int


XYZ_FIELDS = (FieldSpec("x", 0, FLOAT32, 1), FieldSpec("y", 4, FLOAT32, 1), FieldSpec("z", 8, FLOAT32, 1))
RGB_FIELD = FieldSpec("rgb", 16, FLOAT32, 1)  # depth_image_proc's
XYZ_POINT_STEP = 16  # depth_image_proc's
XYZRGB_POINT_STEP = 32  # depth_image_proc's
#: (layout, colored) -> (rgb offset or None, point_step)
_LAYOUTS = {
    ("compact", False): (None, 12),
    ("compact", True): (12, 16),
    ("depth_image_proc", False): (None, XYZ_POINT_STEP),
    ("depth_image_proc", True): (RGB_FIELD.offset, XYZRGB_POINT_STEP),
}


def cloud_layout(layout: CloudLayout, colored: bool) -> tuple[list[FieldSpec], int]:
    """The fields and point_step of `layout` with or without the ``rgb`` field."""
    if layout not in CLOUD_LAYOUTS:
        raise ValueError(f"cloud layout must be one of {', '.join(CLOUD_LAYOUTS)}, got {layout!r}")
    rgb_offset, point_step = _LAYOUTS[(layout, colored)]
    fields = list(XYZ_FIELDS)
    if rgb_offset is not None:
        fields.append(FieldSpec("rgb", rgb_offset, FLOAT32, 1))
    return fields, point_step


def pointcloud_fields(xyz: np.ndarray, rgb: np.ndarray | None = None, layout: CloudLayout = "depth_image_proc",
                      buffers: ReusedByteArrays | None = None) -> dict[str, Any]:
    """PointCloud2 fields for an organized cloud: ``height x width`` points, NaN points kept (is_dense False).

    Args:
        xyz: (h, w, 3) float32 points in the optical frame (meters), NaN where invalid.
        rgb: optional (h, w, 3) uint8 colors in **BGR** order (OpenCV's), same h and w (any strides).
        layout: the byte layout (module docstring).
        buffers: where ``data`` comes from: a reused array of this size and layout (the caller's pool); None: a
            fresh zeroed one.

    Returns:
        dict(height, width, fields=[FieldSpec], is_bigendian=False, point_step, row_step,
        data=array('B'), is_dense=False).
    """
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f"xyz must have shape (h, w, 3), got {xyz.shape}")
    height, width = xyz.shape[:2]
    if rgb is not None and (rgb.shape != (height, width, 3) or rgb.dtype != np.uint8):
        raise ValueError(f"rgb must be uint8 of shape {(height, width, 3)}, got {rgb.dtype} {rgb.shape}")
    fields, point_step = cloud_layout(layout, rgb is not None)
    size = height * width * point_step
    # Padding bytes are never written, so they stay zero: a reused array comes back only for the same layout.
    data = buffers.take(size, key=(layout, rgb is not None)) if buffers is not None else zeroed_byte_array(size)
    points = np.frombuffer(data, dtype="<f4").reshape(height, width, point_step // 4)
    points[..., :3] = xyz
    if rgb is not None:
        # Little-endian 0x00RRGGBB is the bytes b, g, r, 0: exactly the BGR pixel, copied as bytes; the fourth byte
        # is never written, so it stays zero (a reused array comes back only for the same layout and coloring).
        offset = fields[-1].offset
        raw = np.frombuffer(data, dtype=np.uint8).reshape(height, width, point_step)
        raw[..., offset:offset + 3] = rgb
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

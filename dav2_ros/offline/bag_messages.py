"""rosbags message objects for the offline tool's outputs, built from the `conversions` field dicts.

The live node passes the same dicts to its rclpy message classes, so both write identical
layouts; this module only adapts them to rosbags' classes (numpy byte arrays, PointField objects).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from dav2_ros.offline.bag_io import CAMERA_INFO_TYPE, IMAGE_TYPE

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

POINTCLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
POINTFIELD_TYPE = "sensor_msgs/msg/PointField"


def _as_bytes_array(data: Any) -> np.ndarray:
    """A bytes-like payload as the flat uint8 array rosbags serializes."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def image_message(typestore: Typestore, header: object, fields: Mapping[str, Any]) -> object:
    """sensor_msgs/Image from `depth_to_image_fields` / `bgr_to_image_fields` output."""
    cls = typestore.types[IMAGE_TYPE]
    return cls(
        header=header,
        height=int(fields["height"]),
        width=int(fields["width"]),
        encoding=str(fields["encoding"]),
        is_bigendian=int(fields["is_bigendian"]),
        step=int(fields["step"]),
        data=_as_bytes_array(fields["data"]),
    )


def pointcloud_message(typestore: Typestore, header: object, fields: Mapping[str, Any]) -> object:
    """sensor_msgs/PointCloud2 from `pointcloud_fields` output."""
    point_field = typestore.types[POINTFIELD_TYPE]
    cls = typestore.types[POINTCLOUD_TYPE]
    return cls(
        header=header,
        height=int(fields["height"]),
        width=int(fields["width"]),
        fields=[
            point_field(name=f.name, offset=int(f.offset), datatype=int(f.datatype), count=int(f.count))
            for f in fields["fields"]
        ],
        is_bigendian=bool(fields["is_bigendian"]),
        point_step=int(fields["point_step"]),
        row_step=int(fields["row_step"]),
        data=_as_bytes_array(fields["data"]),
        is_dense=bool(fields["is_dense"]),
    )


def camera_info_message(typestore: Typestore, header: object, fields: Mapping[str, Any]) -> object:
    """sensor_msgs/CameraInfo from `camera_info_fields` output (an empty ROI, as the node publishes)."""
    cls = typestore.types[CAMERA_INFO_TYPE]
    roi_cls = typestore.types["sensor_msgs/msg/RegionOfInterest"]
    roi = roi_cls(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    values = {key: (np.asarray(value, dtype=np.float64) if key in ("d", "k", "r", "p") else value)
              for key, value in fields.items()}
    return cls(header=header, roi=roi, **values)


#: The bag message type and builder of each `frame_outputs.OUTPUT_MESSAGES` type.
MESSAGE_BUILDERS: dict[str, tuple[str, Callable[[Typestore, object, Mapping[str, Any]], object]]] = {
    "Image": (IMAGE_TYPE, image_message), "CameraInfo": (CAMERA_INFO_TYPE, camera_info_message),
    "PointCloud2": (POINTCLOUD_TYPE, pointcloud_message)}

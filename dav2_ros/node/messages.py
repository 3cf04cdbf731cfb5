"""sensor_msgs messages from the field dicts of `dav2_ros.conversions`, and the depth CameraInfo.

The conversions return plain dicts so the node and the offline tool publish byte-identical
layouts; this module only wraps them in rclpy message classes, with the input image's header.
"""

from __future__ import annotations

from typing import Any, Mapping

from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from dav2_ros.conversions.camera_info import camera_info_fields
from dav2_ros.geometry.intrinsics import Intrinsics


def image_msg(header: Header, fields: Mapping[str, Any]) -> Image:
    """An Image from `depth_to_image_fields` / `bgr_to_image_fields` output."""
    return Image(header=header, **fields)


def pointcloud_msg(header: Header, fields: Mapping[str, Any]) -> PointCloud2:
    """A PointCloud2 from `pointcloud_fields` output (its FieldSpec list becomes PointFields)."""
    values = dict(fields)
    specs = values.pop("fields")
    point_fields = [PointField(name=s.name, offset=s.offset, datatype=s.datatype, count=s.count) for s in specs]
    return PointCloud2(header=header, fields=point_fields, **values)


def depth_camera_info(header: Header, intrinsics: Intrinsics) -> CameraInfo:
    """The CameraInfo of the depth image: `intrinsics` (already scaled to the depth image's size) as K
    and P = [K | 0], no distortion, and the input image's header, so depth_image_proc pairs it with
    `depth/image` and projects exactly as the published cloud was."""
    return CameraInfo(header=header, **camera_info_fields(intrinsics))

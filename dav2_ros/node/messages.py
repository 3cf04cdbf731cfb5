"""sensor_msgs messages from the field dicts of `dav2_ros.conversions`, and the depth CameraInfo.

The conversions return plain dicts so the node and the offline tool publish byte-identical
layouts; this module only wraps them in rclpy message classes, with the input image's header.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from dav2_ros.geometry.intrinsics import Intrinsics, camera_info_fields


def image_msg(header: Header, fields: Mapping[str, Any]) -> Image:
    """An Image from `depth_to_image_fields` / `bgr_to_image_fields` output; its ``data`` array is kept, not
    copied (`_with_payload`)."""
    values = dict(fields)
    data = values.pop("data")
    return _with_payload(Image(header=header, **_IMAGE_CHECKED, **values), data)


def pointcloud_msg(header: Header, fields: Mapping[str, Any]) -> PointCloud2:
    """A PointCloud2 from `pointcloud_fields` output (its FieldSpec list becomes PointFields); its ``data`` array is
    kept, not copied (`_with_payload`)."""
    values = dict(fields)
    specs = values.pop("fields")
    data = values.pop("data")
    point_fields = [PointField(name=s.name, offset=s.offset, datatype=s.datatype, count=s.count) for s in specs]
    return _with_payload(PointCloud2(header=header, fields=point_fields, **_CLOUD_CHECKED, **values), data)


def _checked(msg_type: type) -> dict[str, bool]:
    """``check_fields=True`` where the message classes take it (Jazzy and later): only a message that checks its
    fields keeps an ``array('B')`` given to its ``data`` setter by reference; one that does not copies it (Humble's
    classes keep it either way and have no such argument)."""
    return {"check_fields": True} if "_check_fields" in getattr(msg_type, "__slots__", ()) else {}


_IMAGE_CHECKED = _checked(Image)
_CLOUD_CHECKED = _checked(PointCloud2)


def _with_payload(msg: Any, data: Any) -> Any:
    """`msg` with ``data`` set through the setter, after construction: the constructor would copy it into a new
    ``array('B')``. The copies that remain are rclpy's: ``publish`` copies the payload into the C message (through
    the buffer protocol) and the middleware serializes it -- none of which the Python side can avoid."""
    msg.data = data
    return msg


def camera_info_msg(header: Header, fields: Mapping[str, Any]) -> CameraInfo:
    """A CameraInfo from `camera_info_fields` output."""
    return CameraInfo(header=header, **fields)


#: The builder of each `frame_outputs.OUTPUT_MESSAGES` type: (header, fields) -> rclpy message.
MESSAGE_BUILDERS: dict[str, Callable[[Header, Mapping[str, Any]], Any]] = {
    "Image": image_msg, "CameraInfo": camera_info_msg, "PointCloud2": pointcloud_msg}


def depth_camera_info(header: Header, intrinsics: Intrinsics) -> CameraInfo:
    """The CameraInfo of the depth image: `intrinsics` (already scaled to the depth image's size) as K
    and P = [K | 0], no distortion, and the input image's header, so depth_image_proc pairs it with
    `depth/image` and projects exactly as the published cloud was."""
    return camera_info_msg(header, camera_info_fields(intrinsics))

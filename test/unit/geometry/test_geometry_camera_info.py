"""CameraInfo fields for the depth image, and the encoders' dicts in both rclpy and rosbags message classes."""

from __future__ import annotations

import numpy as np
import pytest

from dav2_ros.conversions.image_codec import depth_msg_to_array, depth_to_image_fields
from dav2_ros.conversions.pointcloud import pointcloud_fields
from dav2_ros.geometry.intrinsics import Intrinsics, camera_info_fields

INTR = Intrinsics(600.0, 610.0, 300.5, 250.25, 640, 480)


def test_fields_are_a_pinhole_camera_without_distortion():
    fields = camera_info_fields(INTR)
    assert (fields["width"], fields["height"], fields["distortion_model"]) == (640, 480, "plumb_bob")
    np.testing.assert_array_equal(fields["k"], [600.0, 0.0, 300.5, 0.0, 610.0, 250.25, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(fields["p"], [600.0, 0.0, 300.5, 0.0, 0.0, 610.0, 250.25, 0.0, 0.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(fields["r"], np.eye(3).ravel())
    assert not fields["d"].any()


def test_round_trip_through_intrinsics_k_and_p():
    fields = camera_info_fields(INTR)
    msg = type("Info", (), fields)
    assert Intrinsics.from_camera_info(msg) == INTR
    assert Intrinsics.from_camera_info(msg, source="p") == INTR


def test_rclpy_messages_accept_the_dicts():
    sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 Python messages) not installed")
    info = sensor_msgs.CameraInfo(**camera_info_fields(INTR))
    assert Intrinsics.from_camera_info(info) == INTR
    assert list(info.d) == [0.0] * 5


def test_rosbags_serializes_the_dicts_byte_for_byte():
    """The offline tool's path: rosbags classes need ndarray data (np.frombuffer over the array('B'), no copy)."""
    typesys = pytest.importorskip("rosbags.typesys", reason="rosbags not installed")
    store = typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="cam"
    )
    depth = np.array([[1.0, np.nan], [2.5, 3.0]], dtype=np.float32)
    fields = depth_to_image_fields(depth)
    fields["data"] = np.frombuffer(fields["data"], np.uint8)
    image_type = store.types["sensor_msgs/msg/Image"]
    back = round_trip(store, image_type(header=header, **fields), "sensor_msgs/msg/Image")
    np.testing.assert_array_equal(depth_msg_to_array(back), depth)

    roi = store.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    info = store.types["sensor_msgs/msg/CameraInfo"](header=header, roi=roi, **camera_info_fields(INTR))
    assert Intrinsics.from_camera_info(round_trip(store, info, "sensor_msgs/msg/CameraInfo")) == INTR

    cloud = pointcloud_fields(np.zeros((2, 3, 3), np.float32))
    point_field = store.types["sensor_msgs/msg/PointField"]
    cloud["fields"] = [point_field(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                       for f in cloud["fields"]]
    cloud["data"] = np.frombuffer(cloud["data"], np.uint8)
    msg = store.types["sensor_msgs/msg/PointCloud2"](header=header, **cloud)
    back_cloud = round_trip(store, msg, "sensor_msgs/msg/PointCloud2")
    assert back_cloud.point_step == 16 and bytes(back_cloud.data) == bytes(cloud["data"])


def round_trip(store, msg, msgtype: str):
    """Serialize to CDR and back, as writing and reading a bag does."""
    return store.deserialize_cdr(store.serialize_cdr(msg, msgtype), msgtype)

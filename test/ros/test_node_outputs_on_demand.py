"""The node builds only the outputs someone subscribes to (issue 18): with nobody on `points` no cloud is computed
or built; once a subscriber appears the clouds come, in the compact layout by default, their payload reused frame
after frame (no per-frame allocation) and handed to rclpy by reference (not copied by the message classes)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from dav2_ros.conversions.buffers import ReusedByteArrays
from dav2_ros.conversions.pointcloud import pointcloud_fields
from dav2_ros.node.messages import image_msg, pointcloud_msg
from dav2_ros.conversions.image_codec import depth_to_image_fields
from bags import read_topics
from node_harness import DdsClient, InProcessNode, same_header, wait_until

pytestmark = pytest.mark.ros

NAMESPACE = "/dav2_on_demand_test"
NODE_PARAMS = {"allow_random_weights": True, "input_size": 70, "device": "cpu", "precision": "fp32",
               "qos.input_reliability": "reliable", "weights_dir": "/nonexistent/dav2_weights", "cloud_stride": 4}
TIMEOUT_S = 60.0


def test_messages_keep_their_payload_by_reference():
    """rclpy's message classes copy a uint8[] given to the constructor; the node's builders set it afterwards, on a
    message that checks its fields, so the array (a reused one) is the message's payload as is."""
    fields = pointcloud_fields(np.zeros((3, 4, 3), np.float32), layout="compact", buffers=ReusedByteArrays())
    assert pointcloud_msg(Header(), fields).data is fields["data"]
    depth = depth_to_image_fields(np.ones((3, 4), np.float32), ReusedByteArrays())
    assert image_msg(Header(), depth).data is depth["data"]


def test_the_cloud_is_built_only_while_someone_subscribes(bags_dir):
    messages = read_topics(bags_dir / "fiducial_board_611", as_rclpy=True)
    image: Image = messages["/camera/image_raw"][0]
    info: CameraInfo = messages["/camera/camera_info"][0]
    with InProcessNode(NODE_PARAMS, namespace=NAMESPACE) as node, DdsClient("dav2_on_demand_client") as client:
        channel = node.node._channels[0]
        image_pub = client.publisher(Image, f"{NAMESPACE}/image")
        info_pub = client.publisher(CameraInfo, f"{NAMESPACE}/camera_info")
        depth = client.collect(Image, f"{NAMESPACE}/depth/image")
        client.wait_for_subscribers(image_pub)
        client.wait_for_subscribers(info_pub)
        wait_until(lambda: channel.depth_pub.get_subscription_count() > 0, TIMEOUT_S, "the node sees the subscriber")
        sec = [100]

        def send() -> Image:
            frame = copy.deepcopy(image)
            frame.header.stamp.sec = sec[0]
            sec[0] += 1
            stamped = copy.deepcopy(info)
            stamped.header.stamp = frame.header.stamp
            info_pub.publish(stamped)
            image_pub.publish(frame)
            return frame

        for _ in range(3):  # depth only: nobody listens to points
            sent = send()
            depth.wait_for(lambda m, sent=sent: same_header(m, sent), TIMEOUT_S, on_wait=lambda: None)
        assert channel._payloads["points"].allocations == 0, "a cloud was built with nobody subscribed"
        assert channel._payloads["depth"].allocations >= 1

        points = client.collect(PointCloud2, f"{NAMESPACE}/points")
        wait_until(lambda: channel.cloud_pub.get_subscription_count() > 0, TIMEOUT_S, "the node sees the subscriber")
        received = []
        for _ in range(4):
            sent = send()
            received.append(points.wait_for(lambda m, sent=sent: same_header(m, sent), TIMEOUT_S))
        cloud = received[-1]
        assert cloud.point_step == 12 and [f.name for f in cloud.fields] == ["x", "y", "z"]  # compact, the default
        assert (cloud.height, cloud.width) == (-(-image.height // 4), -(-image.width // 4))
        xyz = np.frombuffer(cloud.data, dtype="<f4").reshape(cloud.height, cloud.width, 3)
        assert np.isfinite(xyz).any()
        # four clouds from at most two arrays: the payload is reused, not allocated per frame
        assert 1 <= channel._payloads["points"].allocations <= 2

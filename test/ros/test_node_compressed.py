"""The compressed input path over real DDS: the bag's JPEG through a node set to `compressed` gives the
same depth as its decoded pixels through a node set to `raw` (same stand-in weights); and the quirky
ROS 1 conversion fiducial_board_611_raw (CameraInfo stamps never equal the image's, a topic without
a leading slash, format `jpg`) gives depth, depth CameraInfo and cloud with the image's header."""

import copy
import time

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from bags import read_topics
from node_harness import DdsClient, InProcessNode, cloud_fields, every, image_array, same_header

pytestmark = pytest.mark.ros

# backend torch: these tests compare decoders, not engines (the default engine: test_node_pipeline.py).
COMMON = {"allow_random_weights": True, "input_size": 98, "device": "cpu", "backend": "torch", "precision": "fp32",
          "weights_dir": "/nonexistent/dav2_weights"}
TIMEOUT_S = 60.0


def republishing(*sends, period_s=2.0):
    """An `on_wait` hook that re-sends each (publisher, message), in order, every `period_s` (inputs are best
    effort: an image or a CameraInfo can be lost)."""
    return every(period_s, lambda: [publisher.publish(msg) for publisher, msg in sends])


def test_compressed_input_gives_the_same_depth_as_its_decoded_pixels_raw(bags_dir):
    messages = read_topics(bags_dir / "fiducial_board_611", as_rclpy=True)
    jpeg: CompressedImage = messages["/camera/image_raw/compressed"][0]
    info: CameraInfo = messages["/camera/camera_info"][0]
    pixels = cv2.imdecode(np.frombuffer(bytes(jpeg.data), np.uint8), cv2.IMREAD_COLOR)
    raw_image = Image(header=copy.deepcopy(jpeg.header), height=pixels.shape[0], width=pixels.shape[1],
                      encoding="bgr8", is_bigendian=0, step=pixels.shape[1] * 3, data=pixels.tobytes())

    with InProcessNode(dict(COMMON, input_transport="compressed"), namespace="/dav2_jpeg_test") as jpeg_node, \
            InProcessNode(dict(COMMON, input_transport="raw"), namespace="/dav2_decoded_test"), \
            DdsClient("dav2_compressed_client") as client:
        jpeg_pub = client.publisher(CompressedImage, "/dav2_jpeg_test/image/compressed")
        raw_pub = client.publisher(Image, "/dav2_decoded_test/image")
        info_pub = client.publisher(CameraInfo, "/dav2_jpeg_test/camera_info")
        jpeg_depth = client.collect(Image, "/dav2_jpeg_test/depth/image")
        raw_depth = client.collect(Image, "/dav2_decoded_test/depth/image")
        jpeg_cloud = client.collect(PointCloud2, "/dav2_jpeg_test/points")
        for publisher in (jpeg_pub, raw_pub, info_pub):
            client.wait_for_subscribers(publisher)
        assert jpeg_node.node.count_publishers("/dav2_jpeg_test/image") == 0  # compressed only

        info_pub.publish(info)
        jpeg_pub.publish(jpeg)
        raw_pub.publish(raw_image)
        from_jpeg = jpeg_depth.wait_for(lambda m: same_header(m, jpeg), TIMEOUT_S,
                                        on_wait=republishing((jpeg_pub, jpeg)))
        from_raw = raw_depth.wait_for(lambda m: same_header(m, raw_image), TIMEOUT_S,
                                      on_wait=republishing((raw_pub, raw_image)))
        cloud = jpeg_cloud.wait_for(lambda m: same_header(m, jpeg), TIMEOUT_S,
                                    on_wait=republishing((info_pub, info), (jpeg_pub, jpeg)))

    assert (from_jpeg.height, from_jpeg.width) == pixels.shape[:2] == (720, 1280)
    depth_jpeg, depth_raw = image_array(from_jpeg), image_array(from_raw)
    assert np.array_equal(np.isnan(depth_jpeg), np.isnan(depth_raw))
    np.testing.assert_allclose(depth_jpeg, depth_raw, rtol=1e-6, atol=1e-6, equal_nan=True)
    assert (cloud.height, cloud.width) == (720, 1280)
    np.testing.assert_array_equal(cloud_fields(cloud)["z"], depth_jpeg)


def test_quirky_ros1_bag_produces_depth_and_cloud(bags_dir):
    messages = read_topics(bags_dir / "fiducial_board_611_raw", as_rclpy=True)
    image_topic = "raspicam_node/camera/image/compressed"  # as recorded: no leading slash
    jpeg: CompressedImage = messages[image_topic][0]
    infos: list[CameraInfo] = messages["/raspicam_node/camera/camera_info"]
    assert jpeg.format == "jpg"
    assert all(not same_header(info, jpeg) for info in infos)

    remaps = {"image/compressed": image_topic, "camera_info": "/raspicam_node/camera/camera_info"}
    with InProcessNode(dict(COMMON, input_transport="compressed"), remaps=remaps) as node, \
            DdsClient("dav2_quirky_client") as client:
        image_pub = client.publisher(CompressedImage, image_topic)
        info_pub = client.publisher(CameraInfo, "/raspicam_node/camera/camera_info")
        assert node.fqn == "/depth_node"
        depth = client.collect(Image, "/depth/image")
        depth_info = client.collect(CameraInfo, "/depth/camera_info")
        points = client.collect(PointCloud2, "/points")
        client.wait_for_subscribers(image_pub)
        client.wait_for_subscribers(info_pub)
        client.wait_for_publishers("/points")

        # Before any CameraInfo: depth only (said once in the log), no cloud.
        image_pub.publish(jpeg)
        first = depth.wait_for(lambda m: same_header(m, jpeg), TIMEOUT_S, on_wait=republishing((image_pub, jpeg)))
        time.sleep(1.0)  # a cloud would follow the depth image within milliseconds
        assert not points.messages and not depth_info.messages

        # CameraInfos with their own stamps: the latest one is used for the next image.
        for info in infos:
            info_pub.publish(info)
        cloud = points.wait_for(lambda m: same_header(m, jpeg), TIMEOUT_S,
                                on_wait=republishing((info_pub, infos[-1]), (image_pub, jpeg)))
        info_msg = depth_info.wait_for(lambda m: same_header(m, jpeg), TIMEOUT_S)

    assert first.encoding == "32FC1" and (first.height, first.width) == (720, 1280)
    assert first.header.frame_id == "raspicam"
    np.testing.assert_allclose(info_msg.k, infos[-1].k, rtol=1e-12)
    assert (cloud.height, cloud.width) == (720, 1280) and cloud.header.frame_id == "raspicam"
    z = cloud_fields(cloud)["z"]
    assert np.isfinite(z).mean() > 0.5

"""A relative checkpoint over real DDS: `depth/relative` (unitless inverse depth) and no fake metric
depth until the user gives relative_scale/relative_shift; then depth = 1 / (scale * relative + shift)."""

import copy
import time

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from bags import read_topics
from node_harness import DdsClient, InProcessNode, image_array, same_header

pytestmark = pytest.mark.ros

NAMESPACE = "/dav2_relative_test"
# reliable input: raw 1280x720 frames (2.7 MB) over best effort can be lost in DDS fragmentation
PARAMS = {"allow_random_weights": True, "model_type": "relative", "input_size": 98, "device": "cpu",
          "qos.input_reliability": "reliable",
          "precision": "fp32", "weights_dir": "/nonexistent/dav2_weights", "min_depth": 0.01,
          "max_valid_depth": 1000.0,
          # random weights give an inverse depth whose conversion jumps everywhere: no flying-pixel filter here
          "flying_pixel_threshold": 0.0}
TIMEOUT_S = 60.0


def test_relative_model_publishes_relative_only_until_a_conversion_is_given(bags_dir):
    messages = read_topics(bags_dir / "fiducial_board_611", as_rclpy=True)
    image: Image = messages["/camera/image_raw"][0]
    info: CameraInfo = messages["/camera/camera_info"][0]
    with InProcessNode(PARAMS, namespace=NAMESPACE) as node, DdsClient("dav2_relative_client") as client:
        image_pub = client.publisher(Image, f"{NAMESPACE}/image")
        info_pub = client.publisher(CameraInfo, f"{NAMESPACE}/camera_info")
        relative = client.collect(Image, f"{NAMESPACE}/depth/relative")
        depth = client.collect(Image, f"{NAMESPACE}/depth/image")
        points = client.collect(PointCloud2, f"{NAMESPACE}/points")
        client.wait_for_subscribers(image_pub)
        client.wait_for_subscribers(info_pub)

        info_pub.publish(info)
        image_pub.publish(image)
        first = relative.wait_for(lambda m: same_header(m, image), TIMEOUT_S,
                                  on_wait=lambda: image_pub.publish(image))
        time.sleep(1.0)  # metric outputs, if any, would have followed within milliseconds
        assert not depth.messages and not points.messages

        scale, shift = 0.5, 0.1
        results = client.set_parameters(node.fqn, {"relative_scale": scale, "relative_shift": shift})
        assert all(r.successful for r in results), [r.reason for r in results]
        converted = copy.deepcopy(image)
        converted.header.stamp.sec += 1
        info_pub.publish(info)
        image_pub.publish(converted)
        metric = depth.wait_for(lambda m: same_header(m, converted), TIMEOUT_S,
                                on_wait=lambda: image_pub.publish(converted))
        cloud = points.wait_for(lambda m: same_header(m, converted), TIMEOUT_S)
        second = relative.wait_for(lambda m: same_header(m, converted), TIMEOUT_S)

    assert first.encoding == "32FC1" and (first.height, first.width) == (720, 1280)
    inverse = image_array(first)
    assert np.isfinite(inverse).all() and inverse.min() >= 0.0  # ReLU head: unitless, larger = nearer
    np.testing.assert_array_equal(image_array(second), inverse)
    expected = 1.0 / (scale * inverse.astype(np.float64) + shift)
    got = image_array(metric)
    valid = np.isfinite(got)
    assert valid.mean() > 0.9
    np.testing.assert_allclose(got[valid], expected[valid], rtol=1e-5)
    assert (cloud.height, cloud.width) == (720, 1280)


def test_startup_line_lists_only_the_topics_that_will_carry_messages():
    """A relative model without relative_scale publishes depth/relative (and the preview) only: its start-up line
    names those and neither depth/image, depth/camera_info nor points; setting relative_scale says the new list."""
    from node_harness import NodeProcess

    ns = "/dav2_relative_line"
    with NodeProcess({**PARAMS, "warmup_width": 64, "warmup_height": 48}, namespace=ns) as node, \
            DdsClient("dav2_relative_line_client") as client:
        line = node.wait_for_output(r"listening on .*; publishing ", 120.0)
        results = client.set_parameters(f"{ns}/depth_node", {"relative_scale": 0.5})
        assert all(r.successful for r in results), [r.reason for r in results]
        changed = node.wait_for_output(r"parameters changed: now publishing ", 60.0)
    published = line.split("; publishing ", 1)[1]
    assert published == f"{ns}/depth/relative, {ns}/depth/colored (while subscribed)"
    assert changed.split("now publishing ", 1)[1] == (f"{ns}/depth/relative, {ns}/depth/image, {ns}/depth/camera_info, "
                                                      f"{ns}/points, {ns}/depth/colored (while subscribed)")

"""The real depth node (in-process, stand-in weights, input_size 98) over real DDS on localhost, fed the
fiducial_board_611 frame + CameraInfo: depth image, its CameraInfo, the organized cloud checked
against an independent back-projection, runtime parameters over the parameter service, the
colorized preview, bad input and diagnostics."""

import copy

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from bags import read_topics
from node_harness import DdsClient, InProcessNode, cloud_fields, every, image_array, same_header, wait_until

pytestmark = pytest.mark.ros

NAMESPACE = "/dav2_pipeline_test"
# reliable input: raw 1280x720 frames (2.7 MB) over best effort can be lost in DDS fragmentation
NODE_PARAMS = {"allow_random_weights": True, "input_size": 98, "device": "cpu", "precision": "fp32",
               "qos.input_reliability": "reliable",
               "weights_dir": "/nonexistent/dav2_weights", "min_depth": 0.1, "max_valid_depth": 20.0}
TIMEOUT_S = 60.0


class Rig:
    """The node under test, a client, and the bag's frame to send with fresh stamps."""

    def __init__(self, bags_dir):
        messages = read_topics(bags_dir / "fiducial_board_611", as_rclpy=True)
        self.image: Image = messages["/camera/image_raw"][0]
        self.info: CameraInfo = messages["/camera/camera_info"][0]
        self.next_sec = 1_000
        self.node = InProcessNode(NODE_PARAMS, namespace=NAMESPACE).__enter__()
        self.client = DdsClient("dav2_pipeline_client")
        self.image_pub = self.client.publisher(Image, f"{NAMESPACE}/image")
        self.info_pub = self.client.publisher(CameraInfo, f"{NAMESPACE}/camera_info")
        self.depth = self.client.collect(Image, f"{NAMESPACE}/depth/image")
        self.depth_info = self.client.collect(CameraInfo, f"{NAMESPACE}/depth/camera_info")
        self.points = self.client.collect(PointCloud2, f"{NAMESPACE}/points")
        self.diagnostics = self.client.collect(DiagnosticArray, "/diagnostics")
        self.client.wait_for_subscribers(self.image_pub)
        self.client.wait_for_subscribers(self.info_pub)
        self.client.wait_for_publishers(f"{NAMESPACE}/points")

    def send(self, image: Image = None, info=None):
        """Publish a frame (and its CameraInfo unless `info` is False) with a new stamp; returns the image."""
        image = copy.deepcopy(image or self.image)
        image.header.stamp.sec = self.next_sec
        self.next_sec += 1
        self.last_info = None
        if info is not False:
            info = copy.deepcopy(info or self.info)
            info.header.stamp = image.header.stamp
            self.info_pub.publish(info)
            self.last_info = info
        self.image_pub.publish(image)
        return image

    def _republish(self, sent: Image) -> None:
        """Send the frame again (with its CameraInfo): the node's inputs are best effort, either can be lost."""
        if self.last_info is not None:
            self.info_pub.publish(self.last_info)
        self.image_pub.publish(sent)

    def outputs(self, sent: Image, *collectors):
        """The messages with `sent`'s header on each collector; re-publishes now and then (best effort in)."""
        found = []
        for collector in collectors:
            found.append(collector.wait_for(lambda m: same_header(m, sent), TIMEOUT_S,
                                            on_wait=every(2.0, lambda: self._republish(sent))))
        return found

    def set(self, **values):
        results = self.client.set_parameters(self.node.fqn, values)
        assert all(r.successful for r in results), [r.reason for r in results]

    def close(self):
        self.client.close()
        self.node.__exit__(None, None, None)


@pytest.fixture(scope="module")
def rig(bags_dir):
    rig = Rig(bags_dir)
    yield rig
    rig.close()


def backproject(depth: np.ndarray, k: np.ndarray, stride: int = 1) -> np.ndarray:
    """x, y, z of every kept pixel, in float64, from the pinhole model (independent of the package)."""
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    rows = np.arange(0, depth.shape[0], stride)[:, None].astype(np.float64)
    cols = np.arange(0, depth.shape[1], stride)[None, :].astype(np.float64)
    z = depth[::stride, ::stride].astype(np.float64)
    return np.stack([(cols - cx) * z / fx, (rows - cy) * z / fy, z], axis=-1)


def assert_cloud_matches_depth(cloud: PointCloud2, depth: np.ndarray, k: np.ndarray, stride: int = 1):
    fields = cloud_fields(cloud)
    assert [f.name for f in cloud.fields][:3] == ["x", "y", "z"]
    xyz = np.stack([fields["x"], fields["y"], fields["z"]], axis=-1)
    expected = backproject(depth, k, stride)
    assert xyz.shape == expected.shape
    assert np.array_equal(np.isnan(xyz), np.isnan(expected)), "NaN points differ from NaN depth"
    np.testing.assert_allclose(xyz, expected, rtol=0, atol=1e-5, equal_nan=True)


def test_depth_image_camera_info_and_cloud_for_the_bag_frame(rig):
    sent = rig.send()
    depth_msg, info_msg, cloud = rig.outputs(sent, rig.depth, rig.depth_info, rig.points)

    assert depth_msg.encoding == "32FC1"
    assert (depth_msg.height, depth_msg.width) == (sent.height, sent.width) == (720, 1280)
    assert depth_msg.header.frame_id == "raspicam"
    depth = image_array(depth_msg)
    valid = depth[np.isfinite(depth)]
    assert valid.size > 0.5 * depth.size
    assert valid.min() >= 0.1 and valid.max() <= 20.0

    assert (info_msg.width, info_msg.height) == (depth_msg.width, depth_msg.height)
    np.testing.assert_allclose(info_msg.k, rig.info.k, rtol=1e-12)  # same size: K unchanged
    assert same_header(info_msg, depth_msg)

    assert (cloud.height, cloud.width) == (720, 1280) and not cloud.is_dense
    assert cloud.header.frame_id == "raspicam"
    assert_cloud_matches_depth(cloud, depth, np.asarray(info_msg.k))


def test_validity_range_gives_nan_depth_and_nan_points(rig):
    sent = rig.send()
    reference = image_array(rig.outputs(sent, rig.depth)[0])
    finite = np.sort(reference[np.isfinite(reference)])
    low = float(finite[len(finite) // 10] + finite[len(finite) // 10 + 1]) / 2
    high = float(finite[len(finite) // 2] + finite[len(finite) // 2 + 1]) / 2
    rig.set(min_depth=low, max_valid_depth=high)
    try:
        sent = rig.send()
        depth_msg, info_msg, cloud = rig.outputs(sent, rig.depth, rig.depth_info, rig.points)
        depth = image_array(depth_msg)
        expected_valid = np.isfinite(reference) & (reference >= low) & (reference <= high)
        assert np.count_nonzero(np.isfinite(depth) != expected_valid) <= 2
        assert 0.3 < np.isnan(depth).mean() < 0.7
        assert_cloud_matches_depth(cloud, depth, np.asarray(info_msg.k))
    finally:
        rig.set(min_depth=0.1, max_valid_depth=20.0)


@pytest.mark.parametrize("layout, rgb_offset, point_step", [("compact", 12, 16), ("depth_image_proc", 16, 32)])
def test_cloud_stride_and_rgb(rig, layout, rgb_offset, point_step):
    rig.set(cloud_stride=2, cloud_rgb=True, cloud_layout=layout)
    try:
        sent = rig.send()
        depth_msg, info_msg, cloud = rig.outputs(sent, rig.depth, rig.depth_info, rig.points)
    finally:
        rig.set(cloud_stride=1, cloud_rgb=False, cloud_layout="compact")
    assert (cloud.height, cloud.width) == (360, 640)
    assert_cloud_matches_depth(cloud, image_array(depth_msg), np.asarray(info_msg.k), stride=2)
    rgb_field = next(f for f in cloud.fields if f.name == "rgb")
    assert rgb_field.offset == rgb_offset and cloud.point_step == point_step
    packed = cloud_fields(cloud)["rgb"].view(np.uint32)
    bgr = image_array(sent)[::2, ::2].astype(np.uint32)
    np.testing.assert_array_equal(packed, (bgr[..., 2] << 16) | (bgr[..., 1] << 8) | bgr[..., 0])


def test_input_size_changes_at_runtime(rig):
    sent = rig.send()
    before = image_array(rig.outputs(sent, rig.depth)[0])
    rig.set(input_size=126)
    try:
        sent = rig.send()
        after = image_array(rig.outputs(sent, rig.depth)[0])
        node_diagnostics(rig, lambda v: v["input_size"] == "126", "/diagnostics naming the new input_size")
    finally:
        rig.set(input_size=98)
    assert after.shape == before.shape == (720, 1280)
    assert not np.allclose(after, before, equal_nan=True)


def test_invalid_parameters_are_refused_with_a_reason_over_the_service(rig):
    results = rig.client.set_parameters(rig.node.fqn, {"input_size": 100})
    assert not results[0].successful and "step: 14" in results[0].reason
    results = rig.client.set_parameters(rig.node.fqn, {"input_size": 2000})
    assert not results[0].successful and "1540" in results[0].reason
    results = rig.client.set_parameters(rig.node.fqn, {"encoder": "vitx"})
    assert not results[0].successful and "read-only" in results[0].reason
    results = rig.client.set_parameters(rig.node.fqn, {"min_depth": 30.0})
    assert not results[0].successful and "must be below max_valid_depth" in results[0].reason
    results = rig.client.set_parameters(rig.node.fqn, {"relative_scale": 2.0})
    assert not results[0].successful and "relative models only" in results[0].reason
    assert rig.client.get_parameters(rig.node.fqn, ["input_size", "encoder", "min_depth"]) == \
        {"input_size": 98, "encoder": "vits", "min_depth": 0.1}


def test_colored_preview_is_published_to_a_subscriber(rig):
    colored = rig.client.collect(Image, f"{NAMESPACE}/depth/colored")
    wait_until(lambda: rig.node.node.count_subscribers(f"{NAMESPACE}/depth/colored") >= 1, TIMEOUT_S,
               "the node to see the depth/colored subscriber")
    sent = rig.send()
    preview = rig.outputs(sent, colored)[0]
    assert preview.encoding == "bgr8" and (preview.height, preview.width) == (720, 1280)
    assert image_array(preview).std() > 0


def node_diagnostics(rig, predicate, what, resend=None):
    """The node's latest diagnostics values (key -> value) once `predicate(values)` holds; `resend`
    (an image) is published again every 2 s meanwhile, as inputs are best effort."""
    again = every(2.0, lambda: rig.image_pub.publish(resend)) if resend is not None else (lambda: None)

    def latest():
        again()
        for array in reversed(rig.diagnostics.messages):
            for status in array.status:
                if status.name.startswith(rig.node.fqn):
                    values = {kv.key: kv.value for kv in status.values}
                    return values if predicate(values) else None
        return None

    return wait_until(latest, 10.0, what)


def test_bad_input_is_rejected_counted_and_the_node_keeps_going(rig):
    bad = copy.deepcopy(rig.image)
    bad.encoding = "16UC1"  # a depth encoding, not a camera image
    bad_sent = rig.send(bad)
    node_diagnostics(rig, lambda v: int(v.get("rejected.unsupported_encoding", 0)) >= 1,
                     "diagnostics counting the 16UC1 frame", resend=bad_sent)
    sliver = Image(header=copy.deepcopy(rig.image.header), height=4, width=400, encoding="mono8", step=400,
                   data=bytes(1600))  # decodes fine, but 100:1 is too elongated for the model
    sliver_sent = rig.send(sliver, info=False)
    node_diagnostics(rig, lambda v: int(v.get("rejected.bad_aspect", 0)) >= 1,
                     "diagnostics counting the 400x4 frame", resend=sliver_sent)

    good_sent = rig.send()
    rig.outputs(good_sent, rig.depth)
    assert not [m for m in rig.depth.messages if same_header(m, bad_sent) or same_header(m, sliver_sent)]
    values = node_diagnostics(rig, lambda v: int(v["frames_out"]) >= 1, "diagnostics after the good frame")
    assert int(values["frames_rejected"]) >= 2
    assert values["device"] == "cpu" and values["precision"] == "fp32" and values["input_size"] == "98"
    for key in ("rate_hz", "latency_p50_ms", "latency_p99_ms", "frames_in", "frames_dropped", "model"):
        assert key in values
    assert float(values["latency_p50_ms"]) > 0


def test_camera_info_of_another_size_is_scaled_to_the_image(rig):
    half = copy.deepcopy(rig.info)
    half.width, half.height = 640, 360
    k = np.asarray(rig.info.k, dtype=np.float64)
    half_k = k.copy()
    half_k[[0, 4]] = k[[0, 4]] / 2
    half_k[[2, 5]] = (k[[2, 5]] + 0.5) / 2 - 0.5
    half.k = half_k
    try:
        sent = rig.send(info=half)
        info_msg, cloud, depth_msg = rig.outputs(sent, rig.depth_info, rig.points, rig.depth)
        assert (info_msg.width, info_msg.height) == (1280, 720)
        np.testing.assert_allclose(np.asarray(info_msg.k), k, rtol=0, atol=1e-9)
        assert_cloud_matches_depth(cloud, image_array(depth_msg), np.asarray(info_msg.k))
    finally:
        rig.outputs(rig.send(), rig.depth_info)  # back to the full-size CameraInfo

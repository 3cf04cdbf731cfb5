"""Runtime parameter changes while frames stream, in the real node over real DDS: 200 changes of input_size,
cloud_stride, cloud_rgb, min_depth and max_valid_depth through the parameter service during a ~30 Hz stream.

A change only stores the new settings on the executor thread; the worker builds the new processor and swaps it in
between batches, so a frame never pairs new settings with a processor built for old ones (a cloud_stride that does
not match the points, colors of another shape) and the executor never touches the device while the worker may be
capturing a CUDA graph. Checked here: no frame fails, every processor is built on the worker thread, and every
published cloud is consistent in itself and with the depth image of its frame (its size gives its stride; its points
are that depth back-projected at that stride; its rgb field, when present, is the image at that stride).
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from bags import read_topics
from node_harness import RELIABLE_QOS, DdsClient, InProcessNode, cloud_fields, image_array, wait_until

pytestmark = pytest.mark.ros

NAMESPACE = "/dav2_storm_test"
# backend torch: 200 input_size changes would make the OpenVINO engine convert a network per new size (seconds
# each); this test is about the settings' hand-over between threads, not the engine.
PARAMS = {"allow_random_weights": True, "input_size": 70, "device": "cpu", "backend": "torch", "precision": "fp32",
          "weights_dir": "/nonexistent/dav2_weights", "warmup_width": 320, "warmup_height": 180,
          "min_depth": 0.1, "max_valid_depth": 20.0}
CHANGES = 200
CHANGE_PAUSE_S = 0.03  # with the service round trip, ~15 changes a second: the storm spans ~400 frames
STREAM_HZ = 30.0
TIMEOUT_S = 120.0
STRIDES = (1, 2, 3, 4)


def small_frame(bags_dir) -> tuple[Image, CameraInfo, np.ndarray]:
    """The bag's 1280x720 bgr8 frame at a quarter of its size (real pixels, light messages) and its CameraInfo."""
    messages = read_topics(bags_dir / "fiducial_board_611", as_rclpy=True)
    full, info = messages["/camera/image_raw"][0], messages["/camera/camera_info"][0]
    assert full.encoding == "bgr8"
    pixels = np.frombuffer(bytes(full.data), np.uint8).reshape(full.height, full.step)[:, : full.width * 3]
    pixels = np.ascontiguousarray(pixels.reshape(full.height, full.width, 3)[::4, ::4])
    height, width = pixels.shape[:2]
    image = Image(header=copy.deepcopy(full.header), height=height, width=width, encoding="bgr8", is_bigendian=0,
                  step=width * 3, data=pixels.tobytes())
    k = np.array(info.k, dtype=np.float64).reshape(3, 3)
    k[:2] *= 0.25
    k[:2, 2] -= 0.375  # pixel centers: (u + 0.5) / 4 - 0.5
    small = CameraInfo(header=copy.deepcopy(info.header), width=width, height=height, distortion_model="plumb_bob",
                       d=[0.0] * 5, k=k.ravel().tolist(), r=list(info.r),
                       p=np.hstack([k, np.zeros((3, 1))]).ravel().tolist())
    return image, small, pixels


class CloudChecks:
    """Checks every cloud as it arrives (bounded memory: only the last few depth images and clouds are kept to pair
    them by stamp): its size gives its stride, its fields and steps are depth_image_proc's, its rgb is the image at
    that stride, and its points are its frame's depth image back-projected at that stride."""

    KEEP = 40

    def __init__(self, pixels: np.ndarray, k: np.ndarray) -> None:
        self.pixels, self.k = pixels, k
        self.height, self.width = pixels.shape[:2]
        self._lock = threading.Lock()
        self._depths: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._clouds: OrderedDict[tuple, tuple[int, dict]] = OrderedDict()
        self.errors: list[str] = []
        self.clouds = 0
        self.paired = 0
        self.last: tuple[int, bool] | None = None  # (stride, colored) of the newest cloud

    def on_depth(self, msg: Image) -> None:
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self._lock:
            self._depths[stamp] = image_array(msg)
            self._pair(stamp)

    def on_cloud(self, msg: PointCloud2) -> None:
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        try:
            stride, fields = self._check_alone(msg)
        except AssertionError as error:
            with self._lock:
                self.errors.append(f"cloud {stamp}: {error}")
            return
        with self._lock:
            self.clouds += 1
            self.last = (stride, "rgb" in fields)
            self._clouds[stamp] = (stride, fields)
            self._pair(stamp)

    def _check_alone(self, cloud: PointCloud2) -> tuple[int, dict]:
        height, width = self.height, self.width
        stride = next((s for s in STRIDES if (cloud.height, cloud.width) == (-(-height // s), -(-width // s))), None)
        assert stride is not None, f"a {cloud.width}x{cloud.height} cloud matches no stride of a {width}x{height} frame"
        names = [f.name for f in cloud.fields]
        assert names in (["x", "y", "z"], ["x", "y", "z", "rgb"]), names
        assert cloud.point_step == (16 if "rgb" in names else 12), (names, cloud.point_step)  # compact layout
        assert cloud.row_step == cloud.width * cloud.point_step and len(cloud.data) == cloud.row_step * cloud.height
        fields = cloud_fields(cloud)
        if "rgb" in names:
            packed = fields["rgb"].view(np.uint32)
            kept = self.pixels[::stride, ::stride].astype(np.uint32)  # bgr8
            expected = (kept[..., 2] << 16) | (kept[..., 1] << 8) | kept[..., 0]
            assert np.array_equal(packed, expected), f"rgb is not the image at stride {stride}"
        return stride, fields

    def _pair(self, stamp: tuple) -> None:
        """Under the lock: compare the cloud and the depth of `stamp` once both are in; forget old ones."""
        if stamp in self._depths and stamp in self._clouds:
            depth = self._depths.pop(stamp)
            stride, fields = self._clouds.pop(stamp)
            z = depth[::stride, ::stride]
            cols = np.arange(0, self.width, stride)[None, :]
            rows = np.arange(0, self.height, stride)[:, None]
            k = self.k
            try:
                np.testing.assert_array_equal(fields["z"], z)
                np.testing.assert_allclose(fields["x"], (cols - k[0, 2]) / k[0, 0] * z, rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose(fields["y"], (rows - k[1, 2]) / k[1, 1] * z, rtol=1e-5, atol=1e-5)
                self.paired += 1
            except AssertionError as error:
                self.errors.append(f"cloud {stamp} (stride {stride}) vs its depth image: {error}")
        for kept in (self._depths, self._clouds):
            while len(kept) > self.KEEP:
                kept.popitem(last=False)


def test_200_parameter_changes_during_a_30_hz_stream(bags_dir, monkeypatch):
    from dav2_ros.node import depth_node

    builds: list[str] = []
    real_build = depth_node.build_processor

    def build_processor(estimator, settings):  # the real builder; records the thread that calls it
        builds.append(threading.current_thread().name)
        return real_build(estimator, settings)

    monkeypatch.setattr(depth_node, "build_processor", build_processor)
    image, info, pixels = small_frame(bags_dir)
    checks = CloudChecks(pixels, np.array(info.k).reshape(3, 3))
    with InProcessNode(PARAMS, namespace=NAMESPACE) as node, DdsClient("dav2_storm_client") as client:
        builds.clear()  # the start-up build ran on the main thread, before the worker had any frame
        image_pub = client.publisher(Image, f"{NAMESPACE}/image")
        info_pub = client.publisher(CameraInfo, f"{NAMESPACE}/camera_info")
        client.node.create_subscription(Image, f"{NAMESPACE}/depth/image", checks.on_depth, RELIABLE_QOS)
        client.node.create_subscription(PointCloud2, f"{NAMESPACE}/points", checks.on_cloud, RELIABLE_QOS)
        client.wait_for_subscribers(image_pub)
        client.wait_for_publishers(f"{NAMESPACE}/points")
        stop = threading.Event()

        def stream() -> None:
            n = 0
            while not stop.is_set():
                msg = copy.deepcopy(image)
                msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + n // 30, (n % 30) * 33_000_000
                info.header.stamp = msg.header.stamp
                info_pub.publish(info)
                image_pub.publish(msg)
                n += 1
                time.sleep(1.0 / STREAM_HZ)

        streamer = threading.Thread(target=stream, name="storm_stream", daemon=True)
        streamer.start()
        try:
            wait_until(lambda: checks.clouds or checks.errors, TIMEOUT_S, "the first cloud")
            rng = np.random.default_rng(11)
            for _ in range(CHANGES):
                change = {
                    "cloud_stride": int(rng.choice(STRIDES)),
                    "cloud_rgb": bool(rng.random() < 0.7),
                    "input_size": int(rng.choice([70, 84, 98])),
                    "min_depth": float(rng.choice([0.1, 0.2])),
                    "max_valid_depth": float(rng.choice([15.0, 20.0])),
                }
                names = rng.choice(list(change), size=int(rng.integers(1, 4)), replace=False)
                results = client.set_parameters(node.fqn, {str(name): change[str(name)] for name in names})
                assert all(r.successful for r in results), [r.reason for r in results]
                time.sleep(CHANGE_PAUSE_S)
            clouds_in_storm = checks.clouds
            # a last, known change: its clouds must come (stride 3, colored)
            results = client.set_parameters(node.fqn, {"cloud_stride": 3, "cloud_rgb": True})
            assert all(r.successful for r in results)
            wait_until(lambda: checks.last == (3, True) or checks.errors, TIMEOUT_S,
                       "a colored cloud at stride 3 after the storm")
        finally:
            stop.set()
            streamer.join(5.0)
        stats = node.node._channels[0].stats.snapshot(0)

    assert not checks.errors, "\n".join(checks.errors[:5])
    assert stats.rejected == {}, f"frames failed during the storm: {stats.rejected}"
    assert builds and set(builds) == {"dav2_frame_worker"}, f"processors built on: {sorted(set(builds))}"
    assert clouds_in_storm >= 20 and checks.paired >= 10, (clouds_in_storm, checks.paired)

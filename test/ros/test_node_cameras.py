"""Several cameras in one node (`cameras: [front, rear]`), in-process over real DDS: each camera's frames come
out on its own topics with its own stamps and intrinsics, frames of both cameras that wait together go through
the network as one batch, and the batched depth equals the depth of each frame run alone."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from dav2_ros.engines.estimator import DepthEstimator
from dav2_ros.pipeline.processing import FrameProcessor
from depth_expect import assert_same_depth, published_depth
from estimator_spy import EstimatorSpy
from node_harness import DdsClient, InProcessNode, cloud_fields, every, image_array, wait_until

pytestmark = pytest.mark.ros

NAMESPACE = "/dav2_cameras_test"
CAMERAS = ("front", "rear")
INPUT_SIZE = 70
NODE_PARAMS = {"allow_random_weights": True, "input_size": INPUT_SIZE, "device": "cpu", "precision": "fp32",
               "weights_dir": "/nonexistent/dav2_weights", "cameras": list(CAMERAS), "warmup_width": 160,
               "warmup_height": 120, "batch_cameras": "on"}
WIDTH, HEIGHT = 160, 120
FOCAL = {"front": 150.0, "rear": 90.0}  # different intrinsics: each cloud must use its own camera's K
TIMEOUT_S = 60.0


class Gate:
    """Holds the estimator's first call until `release` is set, so the test can line up frames of both cameras
    behind it (used as the spy's `before_call`)."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, batch_size: int) -> None:
        self.entered.set()
        assert self.release.wait(TIMEOUT_S), "the test never released the gate"


def image_msg(pixels: np.ndarray, sec: int, frame_id: str) -> Image:
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding="rgb8", step=pixels.shape[1] * 3)
    msg.data = pixels.tobytes()
    msg.header.stamp.sec, msg.header.frame_id = sec, frame_id
    return msg


def camera_info(camera: str) -> CameraInfo:
    f = FOCAL[camera]
    info = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model="plumb_bob")
    info.k = [f, 0.0, (WIDTH - 1) / 2, 0.0, f, (HEIGHT - 1) / 2, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, (WIDTH - 1) / 2, 0.0, 0.0, f, (HEIGHT - 1) / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.header.frame_id = f"{camera}_optical"
    return info


class TwoCameras:
    """The client side of a two-camera node: image/CameraInfo publishers and output collectors per camera, and
    the node's channels (for their counters)."""

    def __init__(self, live: InProcessNode, client: DdsClient, namespace: str) -> None:
        self.images = {c: client.publisher(Image, f"{namespace}/{c}/image") for c in CAMERAS}
        self.infos = {c: client.publisher(CameraInfo, f"{namespace}/{c}/camera_info") for c in CAMERAS}
        self.depth = {c: client.collect(Image, f"{namespace}/{c}/depth/image") for c in CAMERAS}
        self.points = {c: client.collect(PointCloud2, f"{namespace}/{c}/points") for c in CAMERAS}
        self.depth_info = {c: client.collect(CameraInfo, f"{namespace}/{c}/depth/camera_info") for c in CAMERAS}
        self.diagnostics = client.collect(DiagnosticArray, "/diagnostics")
        for camera in CAMERAS:
            client.wait_for_subscribers(self.images[camera])
            client.wait_for_subscribers(self.infos[camera])
            client.wait_for_publishers(f"{namespace}/{camera}/points")
        self.channels = {channel.name: channel for channel in live.node._channels}

        def have_info() -> bool:
            for camera in CAMERAS:  # best-effort input: repeat until both are in
                self.infos[camera].publish(camera_info(camera))
            time.sleep(0.2)
            return all(self.channels[c].camera.camera_info is not None for c in CAMERAS)

        wait_until(have_info, TIMEOUT_S, "both CameraInfos in the node")

    def send(self, camera: str, pixels: np.ndarray, sec: int) -> None:
        self.images[camera].publish(image_msg(pixels, sec, f"{camera}_optical"))

    def line_up_a_batch(self, node, pixels: dict, gate: Gate) -> EstimatorSpy:
        """Put a spy holding the estimator's first call in `gate` into the node, send frame a (front, stamp 1),
        then b (front, 2) and c (rear, 3) while a is held, and release the gate once both wait in the node.
        The caller puts the node's processor back."""
        spy = EstimatorSpy(node._estimator, before_call=gate)
        node._processor = FrameProcessor(spy, node._processor.settings)
        self.send("front", pixels["a"], 1)  # taken alone; the worker waits in the gate with it
        wait_until(lambda: gate.entered.is_set() or self.send("front", pixels["a"], 1), TIMEOUT_S,
                   "the first frame in")
        received = {c: self.channels[c].stats.frames_in for c in CAMERAS}

        def send_both() -> None:
            self.send("front", pixels["b"], 2)
            self.send("rear", pixels["c"], 3)

        send_both()
        again = every(1.0, send_both)  # best-effort input
        wait_until(lambda: (self.channels["front"].stats.frames_in > received["front"] and
                            self.channels["rear"].stats.frames_in > received["rear"]) or again(), TIMEOUT_S,
                   "the frames of both cameras waiting behind the first")
        gate.release.set()
        return spy

    def outputs(self, collectors: dict) -> dict:
        """The messages of frames a, b and c on `collectors` (one per camera), keyed (camera, stamp)."""
        return {(c, sec): collectors[c].wait_for(lambda m, s=sec: m.header.stamp.sec == s, TIMEOUT_S)
                for c, sec in (("front", 1), ("front", 2), ("rear", 3))}


def test_two_cameras_batched_in_one_node():
    rng = np.random.default_rng(7)
    pixels = {name: rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8) for name in ("a", "b", "c")}
    with InProcessNode(NODE_PARAMS, namespace=NAMESPACE) as live, DdsClient("dav2_cameras_client") as client:
        node = live.node
        rig = TwoCameras(live, client, NAMESPACE)
        depth, points, depth_info, diagnostics = rig.depth, rig.points, rig.depth_info, rig.diagnostics
        real = node._processor
        try:
            spy = rig.line_up_a_batch(node, pixels, Gate())
            outputs = rig.outputs(depth)
            clouds = {c: points[c].wait_for(lambda m, s=s: m.header.stamp.sec == s, TIMEOUT_S)
                      for c, s in (("front", 2), ("rear", 3))}
            infos_out = {c: depth_info[c].wait_for(lambda m, s=s: m.header.stamp.sec == s, TIMEOUT_S)
                         for c, s in (("front", 2), ("rear", 3))}
        finally:
            node._processor = real

        assert spy.batches == [1, 2], "frames b (front) and c (rear) waited together: one batch of two"
        assert not [m for m in depth["rear"].messages if m.header.stamp.sec in (1, 2)], "front frame on rear"
        assert not [m for m in depth["front"].messages if m.header.stamp.sec == 3], "rear frame on front"

        reference = DepthEstimator.random(encoder="vits", device="cpu", precision="fp32")
        for (camera, sec), msg in outputs.items():
            name = {1: "a", 2: "b", 3: "c"}[sec]
            assert msg.header.frame_id == f"{camera}_optical" and (msg.width, msg.height) == (WIDTH, HEIGHT)
            alone = reference.infer(pixels[name], input_size=INPUT_SIZE)
            assert_same_depth(image_array(msg), published_depth(alone), rtol=1e-4, atol=1e-4)

        for camera, sec in (("front", 2), ("rear", 3)):
            z = image_array(outputs[(camera, sec)])
            assert infos_out[camera].k[0] == FOCAL[camera]
            fields = cloud_fields(clouds[camera])
            cols = np.arange(WIDTH)[None, :] - (WIDTH - 1) / 2
            np.testing.assert_allclose(fields["z"], z, rtol=0, atol=1e-6, equal_nan=True)
            np.testing.assert_allclose(fields["x"], cols * z / FOCAL[camera], rtol=0, atol=1e-5, equal_nan=True)

        def statuses() -> dict:
            found = {}
            for array in diagnostics.messages:
                for status in array.status:
                    found[status.name] = {kv.key: kv.value for kv in status.values}
            return found if len(found) >= 2 else {}

        found = wait_until(statuses, 10.0, "a diagnostics status per camera")
        fqn = live.fqn
        assert set(found) == {f"{fqn}: depth estimation (front)", f"{fqn}: depth estimation (rear)"}
        wait_until(lambda: statuses()[f"{fqn}: depth estimation (front)"]["frames_out"] == "2", 10.0,
                   "front's count of published frames")


def test_cameras_from_the_two_cameras_params_file():
    """rcl's YAML parser hands `cameras: [front, rear]` over as a string array; the node takes it (declared with
    dynamic typing, since an empty default has no element type) and subscribes per camera."""
    from node_harness import PROJECT_DIR, NodeProcess

    params = {"allow_random_weights": True, "device": "cpu", "weights_dir": "/nonexistent/dav2_weights",
              "warmup_width": 64, "warmup_height": 48}
    params_file = str(PROJECT_DIR / "config" / "two_cameras.yaml")
    with NodeProcess(params, namespace="/dav2_cameras_file", extra_args=["--params-file", params_file]) as node:
        for camera in CAMERAS:
            node.wait_for_output(rf"listening on /dav2_cameras_file/{camera}/image \(raw\) and "
                                 rf"/dav2_cameras_file/{camera}/camera_info; publishing "
                                 rf"/dav2_cameras_file/{camera}/depth/image", 120.0)
        assert "cameras=('front', 'rear')" in node.output and "input_size=364" in node.output
        assert "Traceback" not in node.output


def test_bad_input_on_one_camera_leaves_the_other_untouched():
    """Garbage on front (an unsupported encoding, then a truncated frame) is refused, counted and said for front
    only; rear's frames in the same moments are published exactly, and front's next good frame too."""
    rng = np.random.default_rng(11)
    good = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    reference = DepthEstimator.random(encoder="vits", device="cpu", precision="fp32")
    expected = reference.infer(good, input_size=INPUT_SIZE)
    expected = published_depth(expected)
    namespace = "/dav2_cameras_bad"
    with InProcessNode(dict(NODE_PARAMS, batch_cameras="auto"), namespace=namespace) as live, \
            DdsClient("dav2_cameras_bad_client") as client:
        images = {c: client.publisher(Image, f"{namespace}/{c}/image") for c in CAMERAS}
        depth = {c: client.collect(Image, f"{namespace}/{c}/depth/image") for c in CAMERAS}
        diagnostics = client.collect(DiagnosticArray, "/diagnostics")
        for camera in CAMERAS:
            client.wait_for_subscribers(images[camera])
            client.wait_for_publishers(f"{namespace}/{camera}/depth/image")
        channels = {channel.name: channel for channel in live.node._channels}

        yuv = image_msg(good, 1, "front_optical")
        yuv.encoding = "yuv422"
        truncated = image_msg(good, 2, "front_optical")
        truncated.data = truncated.data[: len(truncated.data) // 2]
        for sec, bad in ((1, yuv), (2, truncated)):
            images["front"].publish(bad)
            images["rear"].publish(image_msg(good, sec, "rear_optical"))
            again = every(2.0, lambda s=sec: images["rear"].publish(image_msg(good, s, "rear_optical")))
            msg = depth["rear"].wait_for(lambda m, s=sec: m.header.stamp.sec == s, TIMEOUT_S, on_wait=again)
            assert_same_depth(image_array(msg), expected, rtol=1e-4, atol=1e-4)
        wait_until(lambda: sum(channels["front"].stats.rejected.values()) == 2, TIMEOUT_S,
                   "front's two rejections")
        assert dict(channels["front"].stats.rejected) == {"unsupported_encoding": 1, "bad_data_size": 1}
        assert not channels["rear"].stats.rejected
        assert not [m for m in depth["front"].messages if m.header.stamp.sec in (1, 2)]

        images["front"].publish(image_msg(good, 3, "front_optical"))
        again = every(2.0, lambda: images["front"].publish(image_msg(good, 3, "front_optical")))
        msg = depth["front"].wait_for(lambda m: m.header.stamp.sec == 3, TIMEOUT_S, on_wait=again)
        assert_same_depth(image_array(msg), expected, rtol=1e-4, atol=1e-4)

        fqn = live.fqn

        def front_warns() -> bool:
            for array in diagnostics.messages:
                for status in array.status:
                    values = {kv.key: kv.value for kv in status.values}
                    if status.name == f"{fqn}: depth estimation (front)" and values.get("rejected.bad_data_size"):
                        return True
            return False

        wait_until(front_warns, 10.0, "front's rejections in its diagnostics status")


class FailingBatches(Gate):
    """A Gate that also fails every estimator call of more than one frame with `error` (raised in the real call
    path, before the network runs), as a device without the memory for the batch would."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def __call__(self, batch_size: int) -> None:
        super().__call__(batch_size)
        if batch_size > 1:
            raise self.error


@pytest.mark.parametrize("error", [MemoryError("not enough memory for 2 frames"),
                                   RuntimeError("one frame of the batch is bad")], ids=["out_of_memory", "model_error"])
def test_a_failed_batch_runs_each_frame_alone(error, capfd):
    """A batch that fails as a whole costs no camera its frame: each frame runs again alone and is published,
    nothing is counted as failed, and one warning says what happened."""
    rng = np.random.default_rng(5)
    pixels = {name: rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8) for name in ("a", "b", "c")}
    namespace = "/dav2_cameras_split"
    with InProcessNode(NODE_PARAMS, namespace=namespace) as live, DdsClient("dav2_cameras_split_client") as client:
        node = live.node
        rig = TwoCameras(live, client, namespace)
        real = node._processor
        try:
            spy = rig.line_up_a_batch(node, pixels, FailingBatches(error))
            outputs = rig.outputs(rig.depth)
        finally:
            node._processor = real
        assert spy.batches == [1, 2, 1, 1], "the failed batch of two ran again as two frames"
        reference = DepthEstimator.random(encoder="vits", device="cpu", precision="fp32")
        for (camera, sec), msg in outputs.items():
            alone = reference.infer(pixels[{1: "a", 2: "b", 3: "c"}[sec]], input_size=INPUT_SIZE)
            assert msg.header.frame_id == f"{camera}_optical"
            assert_same_depth(image_array(msg), published_depth(alone), rtol=1e-4, atol=1e-4)
        for camera in CAMERAS:
            assert not rig.channels[camera].stats.rejected, camera
        wait_until(lambda: (rig.channels["front"].stats.frames_out, rig.channels["rear"].stats.frames_out) == (2, 1),
                   10.0, "front's 2 and rear's 1 published frames counted")
    logged = capfd.readouterr().err
    said = [line for line in logged.splitlines() if "a batch of 2 frames" in line]
    assert len(said) == 1 and "[WARN]" in said[0], logged
    assert f"(cameras: front, rear) failed with {type(error).__name__}: {error}; running each frame alone" in said[0]
    assert "[ERROR]" not in logged and "Traceback" not in logged, logged

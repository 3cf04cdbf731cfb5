"""Camera: one camera's half of the frame path, shared by the node and bag_to_depth -- an image message (the real
sensor_msgs layout) in, the frame's FrameRequest out, CameraInfo problems reported to its events."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from dav2_ros.errors import InputRejected
from dav2_ros.geometry.intrinsics import Intrinsics
from dav2_ros.pipeline.camera import Camera, SparseTrack
from dav2_ros.pipeline.settings import NodeSettings
from dav2_ros.pipeline.sparse_alignment import SparseAligner, SparseBuffer

METRIC = NodeSettings.from_params({"temporal_filter": "off"})


class Events:
    """Every report of a Camera, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def no_camera_info(self) -> None:
        self.seen.append(("no_camera_info",))

    def camera_info_scaled(self, info: Intrinsics, scaled: Intrinsics) -> None:
        self.seen.append(("scaled", (info.width, info.height), (scaled.width, scaled.height)))

    def camera_info_unusable(self, error) -> None:
        self.seen.append(("unusable", error.reason))


def image(width: int = 64, height: int = 48, stamp: float = 12.5, frame_id: str = "cam_optical") -> Image:
    msg = Image(height=height, width=width, encoding="bgr8", step=width * 3)
    msg.data = np.arange(height * width * 3, dtype=np.uint32).astype(np.uint8).tobytes()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
    msg.header.frame_id = frame_id
    return msg


def camera_info(width: int = 64, height: int = 48, fx: float = 50.0) -> CameraInfo:
    return CameraInfo(width=width, height=height, k=[fx, 0.0, width / 2, 0.0, fx, height / 2, 0.0, 0.0, 1.0])


def test_a_request_carries_the_pixels_the_intrinsics_at_their_size_and_the_header():
    events = Events()
    camera = Camera(events)
    assert camera.set_camera_info(camera_info(128, 96, fx=100.0)) is True
    assert camera.set_camera_info(camera_info(128, 96, fx=100.0)) is False  # only the first is the first
    settings = METRIC.with_params({"cloud_rgb": True})
    request = camera.request(image(), settings, colorize=True, cloud=False)
    assert request.image.shape == (48, 64, 3) and request.color_order == "bgr"
    assert (request.intrinsics.width, request.intrinsics.height, request.intrinsics.fx) == (64, 48, 50.0)
    assert (request.stamp, request.source) == (12.5, "cam_optical")
    assert (request.colorize, request.cloud, request.cloud_rgb) == (True, False, True)
    assert request.temporal is None and request.align is None  # the filter off, no sparse depth
    assert events.seen == [("scaled", (128, 96), (64, 48))]


def test_no_camera_info_is_reported_only_when_the_frame_would_have_metric_depth():
    events = Events()
    camera = Camera(events)
    assert camera.request(image(), METRIC).intrinsics is None
    relative = METRIC.with_params({"model_type": "relative"})
    assert camera.request(image(), relative).intrinsics is None  # no depth, so no cloud is missed
    assert events.seen == [("no_camera_info",)]


def test_an_unusable_camera_info_is_reported_with_its_reason():
    events = Events()
    camera = Camera(events)
    camera.set_camera_info(camera_info(fx=0.0))
    assert camera.request(image(), METRIC).intrinsics is None
    camera.set_camera_info(camera_info(64, 64))  # a crop: another aspect ratio
    assert camera.request(image(), METRIC).intrinsics is None
    assert [event[1] for event in events.seen] == ["zero_focal", "aspect_mismatch"]


def test_an_elongated_image_is_refused_before_its_camera_info_is_looked_at():
    events = Events()
    camera = Camera(events)
    with pytest.raises(InputRejected) as refused:
        camera.request(image(width=640, height=8), METRIC)
    assert refused.value.reason == "bad_aspect" and events.seen == []


def test_a_compressed_camera_decodes_compressed_images():
    camera = Camera(Events(), compressed=True)
    broken = CompressedImage(format="jpeg", data=b"\xff\xd8 not a jpeg")
    with pytest.raises(InputRejected) as refused:
        camera.request(broken, METRIC)
    assert refused.value.reason == "decode_failed"


def test_the_temporal_filter_lives_with_the_camera_and_starts_over_when_its_settings_change():
    camera = Camera(Events())
    scale = METRIC.with_params({"temporal_filter": "scale"})
    first = camera.request(image(), scale).temporal
    assert first is not None and camera.request(image(), scale).temporal is first and camera.temporal is first
    longer = camera.request(image(), scale.with_params({"temporal_max_gap": 2.0})).temporal
    assert longer is not first and longer.options.max_gap_s == 2.0
    assert camera.request(image(), METRIC).temporal is None and camera.temporal is None


def test_the_sparse_measurement_is_chosen_when_the_fit_runs():
    """A measurement that arrives between the request and the fit (during inference) is used when it is closer."""
    buffer = SparseBuffer()
    camera = Camera(Events(), sparse=SparseTrack(SparseAligner("depth", "sparse_depth"), buffer))
    settings = METRIC.with_params({"sparse.input": "depth", "sparse.metric_correction": True})
    camera.set_camera_info(camera_info())
    request = camera.request(image(stamp=10.0), settings)
    assert request.align is not None
    depth = np.full((48, 64), 2.0, dtype=np.float32)
    sparse = Image(height=48, width=64, encoding="32FC1", step=64 * 4)
    sparse.data = np.where(np.arange(48 * 64).reshape(48, 64) % 7 == 0, 3.0, np.nan).astype(np.float32).tobytes()
    sparse.header.stamp.sec = 10
    sparse.header.frame_id = "cam_optical"
    buffer.add(sparse)
    scale, shift = request.align(depth)
    assert scale == pytest.approx(1.5) and shift == 0.0
    assert Camera(Events()).request(image(), settings).align is None  # no sparse depth: no fit

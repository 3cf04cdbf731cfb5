"""A real camera frame at a chosen size with its CameraInfo, a check of the node's outputs for it, and stamps."""

from __future__ import annotations

import array
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import cv2
import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from bags import read_topics
from node_harness import PROJECT_DIR, cloud_fields, image_array, stamp_key
from rig_settings import BASE_PARAMS

BAGS_DIR = PROJECT_DIR / "test" / "data" / "bags"


def to_stamp(seconds: float) -> TimeMsg:
    """A builtin_interfaces/Time for wall-clock `seconds`."""
    sec = int(seconds)
    return TimeMsg(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def stamp_seconds(stamp: Any) -> float:
    """A header stamp as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


@dataclass
class Camera:
    """One real camera frame (rgb8) at `width` x `height` and the CameraInfo that describes it."""

    pixels: np.ndarray  # HxWx3 uint8, RGB
    k: np.ndarray  # 9 floats, row-major, for this size
    frame_id: str
    _data: array.array = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._data = array.array("B", np.ascontiguousarray(self.pixels).tobytes())

    @classmethod
    def tum(cls, width: int = 160) -> "Camera":
        """TUM RGB-D's 640x480 Kinect frame resized to `width` (4:3), K scaled pixel-centre consistently
        (fx' = fx s, cx' = (cx + 0.5) s - 0.5; computed here, not with the package)."""
        messages = read_topics(BAGS_DIR / "tum_rgbd", as_rclpy=True)
        image: Image = messages["/camera/color/image_raw"][0]
        info: CameraInfo = messages["/camera/color/camera_info"][0]
        assert image.encoding == "rgb8"
        raw = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.step)
        full = raw[:, : image.width * 3].reshape(image.height, image.width, 3)
        scale = width / image.width
        height = int(round(image.height * scale))
        pixels = full if scale == 1 else cv2.resize(full, (width, height), interpolation=cv2.INTER_AREA)
        k = np.asarray(info.k, dtype=np.float64).copy()
        k[0], k[4] = k[0] * scale, k[4] * scale
        k[2], k[5] = (k[2] + 0.5) * scale - 0.5, (k[5] + 0.5) * scale - 0.5
        return cls(np.ascontiguousarray(pixels), k, image.header.frame_id)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def header(self, stamp: float) -> Header:
        return Header(stamp=to_stamp(stamp), frame_id=self.frame_id)

    def image(self, stamp: float) -> Image:
        """The frame as rgb8 with `stamp` (the byte buffer is shared, never copied)."""
        return Image(header=self.header(stamp), height=self.height, width=self.width, encoding="rgb8",
                     is_bigendian=0, step=3 * self.width, data=self._data)

    def jpeg(self, stamp: float, fmt: str = "rgb8; jpeg compressed bgr8") -> CompressedImage:
        """The frame as a JPEG CompressedImage (image_transport's format string by default)."""
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(self.pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        return CompressedImage(header=self.header(stamp), format=fmt, data=encoded.tobytes())

    def camera_info(self, stamp: float, width: Optional[int] = None, height: Optional[int] = None,
                    k: Optional[Sequence[float]] = None, d: Sequence[float] = (0.0,) * 5) -> CameraInfo:
        """This camera's CameraInfo (or one with another size / K / D, for the fault cases)."""
        k_values = np.asarray(self.k if k is None else k, dtype=np.float64)
        fx, cx, fy, cy = k_values[0], k_values[2], k_values[4], k_values[5]
        return CameraInfo(header=self.header(stamp), width=width or self.width, height=height or self.height,
                          distortion_model="plumb_bob", d=np.asarray(d, dtype=np.float64), k=k_values,
                          r=np.eye(3).reshape(9), p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], np.float64))

    def check_outputs(self, sent: Any, depth: Image, depth_info: Optional[CameraInfo] = None,
                      cloud: Optional[PointCloud2] = None, k: Optional[np.ndarray] = None) -> None:
        """AssertionError unless the node's outputs for `sent` are right: 32FC1 meters of the image's size
        and header, finite depth within the validity range, depth CameraInfo = K at that size, and a cloud
        equal to an independent pinhole back-projection of the depth."""
        expected_k = self.k if k is None else np.asarray(k, dtype=np.float64)
        assert depth.encoding == "32FC1", depth.encoding
        assert (depth.height, depth.width) == (self.height, self.width), (depth.height, depth.width)
        assert stamp_key(depth.header.stamp) == stamp_key(sent.header.stamp)
        assert depth.header.frame_id == sent.header.frame_id
        values = image_array(depth)
        finite = values[np.isfinite(values)]
        assert finite.size > 0.5 * values.size, f"only {finite.size} of {values.size} depths are finite"
        assert finite.min() >= BASE_PARAMS["min_depth"] and finite.max() <= BASE_PARAMS["max_valid_depth"]
        if depth_info is not None:
            assert stamp_key(depth_info.header.stamp) == stamp_key(sent.header.stamp)
            assert (depth_info.width, depth_info.height) == (self.width, self.height)
            np.testing.assert_allclose(np.asarray(depth_info.k), expected_k, rtol=0, atol=1e-9)
        if cloud is not None:
            assert stamp_key(cloud.header.stamp) == stamp_key(sent.header.stamp)
            assert cloud.header.frame_id == sent.header.frame_id and not cloud.is_dense
            fields = cloud_fields(cloud)
            xyz = np.stack([fields["x"], fields["y"], fields["z"]], axis=-1)
            expected = pinhole_points(values, expected_k)
            assert xyz.shape == expected.shape, (xyz.shape, expected.shape)
            assert np.array_equal(np.isnan(xyz), np.isnan(expected)), "NaN points differ from NaN depths"
            np.testing.assert_allclose(xyz, expected, rtol=0, atol=1e-5, equal_nan=True)


def pinhole_points(depth: np.ndarray, k: np.ndarray) -> np.ndarray:
    """x, y, z of every pixel from the pinhole model, in float64 (independent of the package)."""
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    rows = np.arange(depth.shape[0], dtype=np.float64)[:, None]
    cols = np.arange(depth.shape[1], dtype=np.float64)[None, :]
    z = depth.astype(np.float64)
    return np.stack([(cols - cx) * z / fx, (rows - cy) * z / fy, z], axis=-1)

"""Raw sensor_msgs/Image decoding (every encoding, padded rows, every rejection) and the Image encoders."""

from __future__ import annotations

import array
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from dav2_ros.conversions.errors import InputRejected
from dav2_ros.conversions.image_codec import (
    bgr_to_image_fields,
    depth_msg_to_array,
    depth_to_image_fields,
    image_msg_to_array,
)

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)  # the scene, in R, G, B order


def image_msg(pixels: np.ndarray, encoding: str, pad: int = 0, data_type=bytes, **overrides) -> SimpleNamespace:
    """An Image look-alike holding ``pixels`` (HxWxC or HxW) with ``pad`` bytes of garbage after each row."""
    height, width = pixels.shape[:2]
    row = pixels.reshape(height, -1)
    padded = np.concatenate([row, np.full((height, pad), 0xAB, np.uint8)], axis=1)
    raw = padded.tobytes()
    data = {bytes: raw, "array": array.array("B", raw), "numpy": np.frombuffer(raw, np.uint8).copy()}[data_type]
    fields = dict(height=height, width=width, encoding=encoding, is_bigendian=0, step=padded.shape[1], data=data)
    fields.update(overrides)
    return SimpleNamespace(**fields)


def as_rgb(image: np.ndarray, order: str) -> np.ndarray:
    return image if order == "rgb" else image[..., ::-1]


@pytest.mark.parametrize("data_type", [bytes, "array", "numpy"])
@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize(
    ("encoding", "make"),
    [
        ("rgb8", lambda: RGB),
        ("bgr8", lambda: RGB[..., ::-1]),
        ("8UC3", lambda: RGB[..., ::-1]),
        ("rgba8", lambda: np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)])),
        ("bgra8", lambda: np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 9, np.uint8)])),
        ("8UC4", lambda: np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 9, np.uint8)])),
    ],
)
def test_color_encodings_decode_to_the_same_scene(encoding, make, pad, data_type):
    image, order = image_msg_to_array(image_msg(np.ascontiguousarray(make()), encoding, pad, data_type))
    assert image.shape == (5, 7, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(as_rgb(image, order), RGB)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
@pytest.mark.parametrize("pad", [0, 5])
def test_mono_is_repeated_to_three_channels(encoding, pad):
    gray = RGB[..., 0]
    image, _ = image_msg_to_array(image_msg(np.ascontiguousarray(gray), encoding, pad))
    assert image.shape == (5, 7, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], gray)


def test_three_channel_decode_is_a_view_of_the_message_data_even_with_padding():
    msg = image_msg(RGB, "rgb8", pad=4, data_type="numpy")
    image, _ = image_msg_to_array(msg)
    assert np.shares_memory(image, msg.data)
    assert image.strides == (7 * 3 + 4, 3, 1)
    # OpenCV (as used by preprocessing) takes the padded view as is.
    resized = cv2.resize(image, (14, 10), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(resized[::2, ::2], RGB)
    from_array = image_msg(RGB, "bgr8", data_type="array")
    assert np.shares_memory(image_msg_to_array(from_array)[0], np.frombuffer(from_array.data, np.uint8))


def test_big_endian_flag_is_irrelevant_for_8_bit():
    image, order = image_msg_to_array(image_msg(RGB, "rgb8", is_bigendian=1))
    np.testing.assert_array_equal(as_rgb(image, order), RGB)


def test_real_rclpy_image_message():
    sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 Python messages) not installed")
    msg = sensor_msgs.Image(height=5, width=7, encoding="rgb8", step=21, data=RGB.tobytes())
    image, order = image_msg_to_array(msg)
    np.testing.assert_array_equal(as_rgb(image, order), RGB)


@pytest.mark.parametrize("encoding", ["16UC1", "bayer_rggb8", "yuv422", "32FC1", "mono16", "", "rgb16"])
def test_unsupported_encodings(encoding):
    with pytest.raises(InputRejected) as err:
        image_msg_to_array(image_msg(RGB, encoding))
    assert err.value.reason == "unsupported_encoding"
    assert repr(encoding) in err.value.detail


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"step": 20}, "bad_step"),  # < 7 * 3
        ({"step": 7}, "bad_step"),
        ({"data": RGB.tobytes()[:-1]}, "bad_data_size"),
        ({"data": RGB.tobytes() + b"\0"}, "bad_data_size"),
        ({"data": b""}, "bad_data_size"),
        ({"width": 0}, "bad_size"),
        ({"height": 0}, "bad_size"),
        ({"width": 20000, "step": 60000}, "bad_size"),
        ({"height": 2**31}, "bad_size"),
        ({"width": 16384, "height": 16384, "step": 3 * 16384}, "bad_size"),  # sides fine, > MAX_PIXELS
        ({"width": 7.5}, "bad_size"),
        ({"step": None}, "bad_step"),
        ({"data": "not bytes"}, "bad_data"),
        ({"data": [300] * 105}, "bad_data"),
        ({"data": array.array("d", [0.0] * 105)}, "bad_data"),
        ({"encoding": None}, "unsupported_encoding"),
    ],
)
def test_rejections_carry_their_reason(overrides, reason):
    msg = image_msg(RGB, "rgb8")
    vars(msg).update(overrides)
    with pytest.raises(InputRejected) as err:
        image_msg_to_array(msg)
    assert err.value.reason == reason
    assert err.value.detail


def test_list_of_ints_data_is_accepted():
    image, order = image_msg_to_array(image_msg(RGB, "rgb8", data=list(RGB.tobytes())))
    np.testing.assert_array_equal(as_rgb(image, order), RGB)


def test_depth_fields_round_trip_and_layout():
    depth = np.array([[0.5, np.nan, 2.25], [1e-3, 80.0, 3.0]], dtype=np.float32)
    fields = depth_to_image_fields(depth)
    assert (fields["height"], fields["width"], fields["encoding"], fields["step"]) == (2, 3, "32FC1", 12)
    assert fields["is_bigendian"] == (sys.byteorder == "big")
    assert isinstance(fields["data"], array.array) and fields["data"].typecode == "B"
    raw = np.frombuffer(fields["data"], dtype="<f4" if not fields["is_bigendian"] else ">f4").reshape(2, 3)
    np.testing.assert_array_equal(raw, depth)
    np.testing.assert_array_equal(depth_msg_to_array(SimpleNamespace(**fields)), depth)
    # Non-contiguous or float64 input is converted, not misread.
    np.testing.assert_array_equal(
        np.frombuffer(depth_to_image_fields(depth.astype(np.float64).T)["data"], np.float32).reshape(3, 2), depth.T
    )


def test_bgr_fields_round_trip():
    bgr = np.ascontiguousarray(RGB[..., ::-1])
    fields = bgr_to_image_fields(bgr)
    assert (fields["encoding"], fields["step"], fields["is_bigendian"]) == ("bgr8", 21, 0)
    image, order = image_msg_to_array(SimpleNamespace(**fields))
    np.testing.assert_array_equal(as_rgb(image, order), RGB)
    with pytest.raises(ValueError):
        bgr_to_image_fields(RGB[..., 0])


def test_fields_build_real_rclpy_messages():
    sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 Python messages) not installed")
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    msg = sensor_msgs.Image(**depth_to_image_fields(depth))
    np.testing.assert_array_equal(depth_msg_to_array(msg), depth)
    colored = sensor_msgs.Image(**bgr_to_image_fields(np.ascontiguousarray(RGB[..., ::-1])))
    assert colored.step == 21 and len(colored.data) == 105


def test_depth_decoder_reads_16uc1_millimeters_with_step_and_endianness():
    mm = np.array([[0, 1000, 65535], [250, 4, 1]], dtype=np.uint16)
    for byteorder, flag in (("<", 0), (">", 1)):
        rows = np.concatenate([mm.astype(byteorder + "u2").view(np.uint8).reshape(2, 6), np.zeros((2, 2), np.uint8)], 1)
        msg = SimpleNamespace(height=2, width=3, encoding="16UC1", is_bigendian=flag, step=8, data=rows.tobytes())
        depth = depth_msg_to_array(msg)
        expected = np.where(mm == 0, np.nan, mm * 0.001).astype(np.float32)
        np.testing.assert_allclose(depth, expected, rtol=1e-6, equal_nan=True)
    with pytest.raises(InputRejected) as err:
        depth_msg_to_array(SimpleNamespace(height=1, width=1, encoding="rgb8", is_bigendian=0, step=3, data=b"abc"))
    assert err.value.reason == "unsupported_encoding"

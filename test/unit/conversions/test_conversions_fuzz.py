"""Property tests: any Image / CompressedImage / CameraInfo field values give a correct result or InputRejected.

Never any other exception: a perception node must be able to count and skip whatever arrives.
"""

from __future__ import annotations

import array
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dav2_ros.conversions.errors import MAX_PIXELS, MAX_SIDE, InputRejected
from dav2_ros.conversions.image_codec import compressed_msg_to_array, image_msg_to_array
from dav2_ros.geometry.intrinsics import Intrinsics, IntrinsicsError

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc3": 3, "8uc4": 4, "8uc1": 1}
ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC3", "8UC4", "8UC1", "RGB8",
             "16UC1", "32FC1", "bayer_rggb8", "yuv422", "mono16", "rgb16", "jpeg", ""]
SIDES = st.one_of(st.integers(-2, 24), st.sampled_from([MAX_SIDE, MAX_SIDE + 1, 2**31, 2**32 - 1]))


def expected_reason(encoding, width, height, step, length) -> str | None:
    """What the decoder must say about these fields (None: it must decode), in its documented check order."""
    channels = CHANNELS.get(encoding.lower())
    if channels is None:
        return "unsupported_encoding"
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE) or width * height > MAX_PIXELS:
        return "bad_size"
    if step < width * channels:
        return "bad_step"
    if length != height * step:
        return "bad_data_size"
    return None


def reference_decode(data: bytes, channels: int, width: int, height: int, step: int) -> np.ndarray:
    """Row by row from the bytes, the slow obvious way."""
    rows = [np.frombuffer(data[r * step : r * step + width * channels], np.uint8) for r in range(height)]
    pixels = np.stack(rows).reshape(height, width, channels)
    return np.repeat(pixels, 3, axis=2) if channels == 1 else pixels[:, :, :3]


@st.composite
def image_fields(draw):
    encoding = draw(st.sampled_from(ENCODINGS))
    width, height = draw(SIDES), draw(SIDES)
    channels = CHANNELS.get(encoding.lower(), 3)
    sane = 0 < width < 64 and 0 < height < 64
    natural = width * channels if sane else 0
    step = draw(st.one_of(st.just(natural), st.integers(natural - 3, natural + 9), st.integers(-5, 300)))
    target = height * step if sane and step > 0 else 0
    length = draw(st.one_of(st.just(target), st.integers(max(target - 2, 0), target + 2), st.integers(0, 400)))
    data = draw(st.binary(min_size=length, max_size=length))
    container = draw(st.sampled_from(["bytes", "array", "numpy"]))
    payload = {"bytes": data, "array": array.array("B", data), "numpy": np.frombuffer(data, np.uint8)}[container]
    return SimpleNamespace(encoding=encoding, width=width, height=height, step=step,
                           is_bigendian=draw(st.integers(0, 1)), data=payload), data


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(image_fields())
def test_image_decode_is_correct_or_rejected(case):
    msg, data = case
    reason = expected_reason(msg.encoding, msg.width, msg.height, msg.step, len(data))
    try:
        image, order = image_msg_to_array(msg)
    except InputRejected as err:
        assert err.reason == reason, (err.reason, reason, err.detail)
        return
    assert reason is None, f"decoded although it should be {reason}"
    assert order in ("rgb", "bgr")
    assert image.shape == (msg.height, msg.width, 3) and image.dtype == np.uint8
    channels = CHANNELS[msg.encoding.lower()]
    np.testing.assert_array_equal(image, reference_decode(data, channels, msg.width, msg.height, msg.step))


def _small_encoded_images() -> list[bytes]:
    v, u = np.mgrid[0:9, 0:13]
    scene = np.dstack([u * 19, v * 28, (u + v) * 9]).astype(np.uint8)
    return [cv2.imencode(ext, scene)[1].tobytes() for ext in (".jpg", ".png")]


ENCODED = _small_encoded_images()


@st.composite
def compressed_fields(draw):
    kind = draw(st.sampled_from(["random", "mutated", "truncated", "prefixed"]))
    if kind == "random":
        data = draw(st.binary(max_size=300))
    else:
        base = bytearray(draw(st.sampled_from(ENCODED)))
        if kind == "mutated":
            for _ in range(draw(st.integers(1, 8))):
                base[draw(st.integers(0, len(base) - 1))] = draw(st.integers(0, 255))
        elif kind == "truncated":
            base = base[: draw(st.integers(0, len(base)))]
        else:
            base = base[:30] + bytearray(draw(st.binary(max_size=100)))
        data = bytes(base)
    known = st.sampled_from(["jpeg", "png", "jpg", "bgr8; jpeg compressed bgr8", ""])
    fmt = draw(st.one_of(known, st.text(max_size=20)))
    return SimpleNamespace(format=fmt, data=data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(compressed_fields())
def test_compressed_decode_is_an_image_or_rejected(msg):
    try:
        image, order = compressed_msg_to_array(msg)
    except InputRejected as err:
        assert err.reason in {"empty_data", "decode_failed", "bad_size", "unsupported_format", "bad_data"}
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert 1 <= image.shape[0] <= MAX_SIDE and 1 <= image.shape[1] <= MAX_SIDE
    assert image.shape[0] * image.shape[1] <= MAX_PIXELS
    assert order in ("rgb", "bgr")


FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1.0, 525.0, 319.5]))


@settings(max_examples=300, deadline=None)
@given(
    k=st.one_of(st.lists(FLOATS, min_size=9, max_size=9), st.lists(FLOATS, max_size=12)),
    width=SIDES,
    height=SIDES,
    target=st.tuples(st.integers(1, 4000), st.integers(1, 4000)),
)
def test_camera_info_gives_valid_intrinsics_or_a_reason(k, width, height, target):
    msg = SimpleNamespace(k=k, width=width, height=height, d=[], distortion_model="plumb_bob")
    try:
        intr = Intrinsics.from_camera_info(msg)
        scaled = intr.scaled_to(*target)
    except IntrinsicsError as err:
        assert err.reason and err.detail
        return
    for value in (intr.fx, intr.fy, intr.cx, intr.cy, scaled.fx, scaled.fy, scaled.cx, scaled.cy):
        assert math.isfinite(value)
    assert intr.fx > 0 and intr.fy > 0 and (scaled.width, scaled.height) == target


def test_oracle_agrees_with_a_known_case():
    """Guard against a vacuous property: the oracle must accept a plain valid message."""
    assert expected_reason("rgb8", 2, 2, 6, 12) is None
    with pytest.raises(InputRejected):
        image_msg_to_array(SimpleNamespace(encoding="rgb8", width=2, height=2, step=6, is_bigendian=0, data=b"\0" * 11))

"""CompressedImage decoding: the real JPEG from the bundled bags, PNG, format strings, and every rejection."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from dav2_ros.conversions import compressed_codec
from dav2_ros.conversions.compressed_codec import declared_size
from dav2_ros.conversions.errors import InputRejected
from dav2_ros.conversions.image_codec import compressed_msg_to_array, image_msg_to_array

pytest.importorskip("rosbags.rosbag2", reason="rosbags is needed to read the test bags")

from bags import read_topics  # noqa: E402 -- after the skip without rosbags


@pytest.fixture(scope="module")
def fiducial(bags_dir) -> dict[str, list]:
    return read_topics(bags_dir / "fiducial_board_611")


def test_bag_jpeg_decodes_to_the_bags_raw_image(fiducial):
    """The bag's bgr8 image is the decode of its JPEG: equal within decoder tolerance (bit-exact here)."""
    compressed = fiducial["/camera/image_raw/compressed"][0]
    assert compressed.format == "bgr8; jpeg compressed bgr8"
    decoded, order = compressed_msg_to_array(compressed)
    raw, raw_order = image_msg_to_array(fiducial["/camera/image_raw"][0])
    assert (order, raw_order) == ("bgr", "bgr")
    assert decoded.shape == raw.shape == (720, 1280, 3)
    diff = np.abs(decoded.astype(np.int16) - raw.astype(np.int16))
    # Different IDCT implementations (libjpeg-turbo builds) may differ by a level or two.
    assert diff.max() <= 3 and (diff == 0).mean() > 0.95, (diff.max(), (diff == 0).mean())
    assert declared_size(np.asarray(compressed.data)) == (1280, 720)


def test_quirky_bag_format_jpg_decodes(bags_dir):
    topics = read_topics(bags_dir / "fiducial_board_611_raw")
    compressed = topics["raspicam_node/camera/image/compressed"][0]
    assert compressed.format == "jpg"
    image, order = compressed_msg_to_array(compressed)
    assert image.shape == (720, 1280, 3) and order == "bgr"


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["png", "rgb8; png compressed bgr8", "", "something unknown", "PNG"])
def test_png_is_lossless_whatever_the_format_string(scene, fmt):
    ok, png = cv2.imencode(".png", scene)
    assert ok
    for data in (png.tobytes(), png.reshape(-1), bytearray(png.tobytes())):
        image, order = compressed_msg_to_array(SimpleNamespace(format=fmt, data=data))
        np.testing.assert_array_equal(image, scene)
        assert order == "bgr"


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "bgr8; jpeg compressed bgr8", "mono8; jpeg compressed mono8"])
def test_jpeg_formats(fmt):
    v, u = np.mgrid[0:24, 0:32]
    smooth = np.dstack([u * 8, v * 10, 255 - u * 4]).astype(np.uint8)  # JPEG-friendly, unlike noise
    ok, jpeg = cv2.imencode(".jpg", smooth, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    image, order = compressed_msg_to_array(SimpleNamespace(format=fmt, data=jpeg.tobytes()))
    assert image.shape == smooth.shape and order == "bgr"
    assert np.abs(image.astype(int) - smooth.astype(int)).mean() < 3


def test_rgb8_stored_order_is_reported(scene):
    ok, png = cv2.imencode(".png", scene[..., ::-1])  # a publisher that encoded RGB bytes directly
    image, order = compressed_msg_to_array(SimpleNamespace(format="rgb8; png compressed rgb8", data=png.tobytes()))
    assert order == "rgb"
    np.testing.assert_array_equal(image, scene[..., ::-1])


def test_gray_and_16bit_png_become_three_8bit_channels(scene):
    gray = scene[..., 0]
    ok, png = cv2.imencode(".png", gray)
    image, _ = compressed_msg_to_array(SimpleNamespace(format="png", data=png.tobytes()))
    assert image.shape == (24, 32, 3)
    np.testing.assert_array_equal(image[..., 1], gray)
    ok, png16 = cv2.imencode(".png", scene.astype(np.uint16) * 257)
    image16, _ = compressed_msg_to_array(SimpleNamespace(format="png", data=png16.tobytes()))
    assert image16.dtype == np.uint8
    np.testing.assert_array_equal(image16, scene)


@pytest.mark.parametrize(
    ("fmt", "data", "reason"),
    [
        ("jpeg", b"", "empty_data"),
        ("jpeg", np.zeros(0, np.uint8), "empty_data"),
        ("jpeg", b"\x00\x01garbage bytes that are no image" * 10, "decode_failed"),
        ("png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "decode_failed"),
        ("jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 60, "decode_failed"),
        ("16UC1; compressedDepth png", b"\x89PNG", "unsupported_format"),
        ("32FC1; compressedDepth", b"\x00" * 20, "unsupported_format"),
        ("jpeg", "text", "bad_data"),
    ],
)
def test_rejections(fmt, data, reason):
    with pytest.raises(InputRejected) as err:
        compressed_msg_to_array(SimpleNamespace(format=fmt, data=data))
    assert err.value.reason == reason and err.value.detail


def test_truncated_real_jpeg_is_refused_or_decoded_never_crashes(fiducial):
    data = np.asarray(fiducial["/camera/image_raw/compressed"][0].data)
    for cut in (2, 100, 600):
        with pytest.raises(InputRejected) as err:
            compressed_msg_to_array(SimpleNamespace(format="jpeg", data=data[:cut]))
        assert err.value.reason == "decode_failed"


def test_huge_declared_size_is_refused_before_decoding(scene):
    ok, png = cv2.imencode(".png", scene)
    header = bytearray(png.tobytes())
    header[16:20] = (40000).to_bytes(4, "big")  # IHDR width
    with pytest.raises(InputRejected) as err:
        compressed_msg_to_array(SimpleNamespace(format="png", data=bytes(header)))
    assert err.value.reason == "bad_size" and "40000" in err.value.detail

    ok, jpeg = cv2.imencode(".jpg", scene)
    data = bytearray(jpeg.tobytes())
    sof = data.find(b"\xff\xc0")
    assert declared_size(np.frombuffer(bytes(data), np.uint8)) == (32, 24)
    data[sof + 5 : sof + 7] = (0).to_bytes(2, "big")  # height 0
    with pytest.raises(InputRejected) as err:
        compressed_msg_to_array(SimpleNamespace(format="jpeg", data=bytes(data)))
    assert err.value.reason == "bad_size"


JPEG_VARIANTS = {
    "baseline 4:2:0": [cv2.IMWRITE_JPEG_QUALITY, 90],
    "progressive": [cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
    "4:4:4": [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444],
    "restart markers": [cv2.IMWRITE_JPEG_RST_INTERVAL, 4],
}


@pytest.mark.skipif(compressed_codec.simplejpeg is None, reason="simplejpeg is not installed: OpenCV decodes alone")
@pytest.mark.parametrize("gray", [False, True], ids=["color", "gray"])
@pytest.mark.parametrize("params", JPEG_VARIANTS.values(), ids=JPEG_VARIANTS.keys())
def test_the_fast_jpeg_decoder_gives_opencvs_pixels(params, gray):
    rng = np.random.default_rng(3)
    pixels = cv2.GaussianBlur(rng.integers(0, 256, (120, 200, 3), dtype=np.uint8), (5, 5), 1.5)
    encoded = cv2.imencode(".jpg", pixels[..., 0] if gray else pixels, params)[1]
    got, order = compressed_msg_to_array(SimpleNamespace(format="jpeg", data=encoded.tobytes()))
    expected = cv2.imdecode(encoded, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert order == "bgr" and got.shape == (120, 200, 3)
    assert np.array_equal(got, expected)
    assert compressed_codec._decode_jpeg(encoded) is not None  # the fast path did decode it


@pytest.mark.parametrize("damage", ["truncated", "garbled entropy data"])
def test_a_damaged_jpeg_is_refused_as_before(damage):
    """What simplejpeg refuses (strict: a truncated file is an error) goes to OpenCV, which decides as it always did."""
    pixels = np.random.default_rng(4).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    data = bytearray(cv2.imencode(".jpg", pixels)[1].tobytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
    opencv = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    message = SimpleNamespace(format="jpeg", data=bytes(data))
    if opencv is None:
        with pytest.raises(InputRejected, match="decode_failed|not a JPEG"):
            compressed_msg_to_array(message)
    else:
        assert np.array_equal(compressed_msg_to_array(message)[0], opencv)

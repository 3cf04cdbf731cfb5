"""sensor_msgs/CompressedImage (JPEG/PNG) -> numpy, decoded by content (JPEG with simplejpeg where installed, else
and for everything simplejpeg refuses, OpenCV).

``format`` strings in the wild are free text: ``jpeg``, ``png``, ``jpg``, image_transport's
``bgr8; jpeg compressed bgr8`` / ``rgb8; png compressed bgr8`` (the part after ``compressed`` is the
channel order inside the file; image_transport always stores color as bgr8). The bytes decide
the codec, so an unknown or missing format string is accepted as long as OpenCV decodes the
data; only compressedDepth (16-bit depth PNG with a header) is refused up front.

simplejpeg and OpenCV both decode with libjpeg-turbo's accurate DCT and fancy upsampling, so they give the same
pixels; simplejpeg skips OpenCV's extra conversions (a 1280x720 frame in about half the time). It runs in strict
mode (a warning such as a truncated file is an error), and anything it does not decode -- a corrupt or truncated
file, CMYK, a lossless JPEG -- goes to OpenCV, so what is accepted and what is refused (and why) stay OpenCV's.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from dav2_ros.conversions.buffers import byte_view
from dav2_ros.errors import InputRejected, size_problem
from dav2_ros.model.config import ColorOrder

try:  # optional: the same pixels as OpenCV's, faster (see the module docstring)
    import simplejpeg
except ImportError:  # pragma: no cover -- a ROS distro's colcon build without it: OpenCV decodes
    simplejpeg = None

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (the ones that carry the image size): C0-CF except DHT, JPG, DAC.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD9)) | {0x01}
_JPEG_SOS = 0xDA
# EXIF rotation would change the pixel grid the CameraInfo describes: keep the stored orientation.
_IMDECODE_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def compressed_msg_to_array(msg: Any) -> tuple[np.ndarray, ColorOrder]:
    """A CompressedImage as an HxWx3 uint8 array and its color order (``"bgr"`` unless the format says rgb8 inside).

    Gray images come back with three equal channels, 16-bit PNGs scaled to 8 bits, alpha dropped.

    Raises:
        InputRejected: ``unsupported_format`` (compressedDepth), ``empty_data``, ``bad_data``,
            ``bad_size`` (declared size 0, above ``MAX_SIDE`` per side or ``MAX_PIXELS`` in all,
            refused before decoding),
            ``decode_failed`` (bytes that are not an image OpenCV can read).
    """
    fmt = msg.format if isinstance(msg.format, str) else ""
    if "compresseddepth" in fmt.lower().replace(" ", ""):
        raise InputRejected(
            "unsupported_format", f"CompressedImage format {fmt!r} is a depth transport, not a camera image"
        )
    data = byte_view(msg.data)
    if data.size == 0:
        raise InputRejected("empty_data", f"CompressedImage (format {fmt!r}) has no data")
    declared = declared_size(data)
    if declared is not None:
        _check_size(*declared, what="declared")
    image = _decode_jpeg(data) if declared is not None and data[0] == 0xFF else None
    try:
        if image is None:
            image = cv2.imdecode(data, _IMDECODE_FLAGS)
    except cv2.error as exc:
        raise InputRejected("decode_failed", f"OpenCV could not decode the {fmt!r} data: {exc}".strip()) from None
    if image is None or image.ndim != 3 or image.shape[2] != 3:
        head = bytes(data[:8]).hex()
        raise InputRejected(
            "decode_failed",
            f"CompressedImage data ({data.size} bytes, format {fmt!r}, starts {head}) is not a JPEG/PNG "
            "image OpenCV can decode",
        )
    _check_size(image.shape[1], image.shape[0], what="decoded")
    return image, _color_order(fmt)


def _decode_jpeg(data: np.ndarray) -> np.ndarray | None:
    """A JPEG decoded by simplejpeg into BGR, or None (not installed, or a file it does not decode: OpenCV's turn)."""
    if simplejpeg is None:
        return None
    try:
        return simplejpeg.decode_jpeg(data, colorspace="BGR", strict=True)
    except (ValueError, TypeError):
        return None


def declared_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a PNG IHDR or JPEG SOF header without decoding; None for other or truncated data."""
    raw = bytes(data[:32])
    if raw.startswith(_PNG_SIGNATURE) and len(raw) >= 24 and raw[12:16] == b"IHDR":
        return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    if raw.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: np.ndarray) -> tuple[int, int] | None:
    """Walk the JPEG marker segments up to the first SOF (a handful of segments, not the pixel data)."""
    pos, end = 2, data.size
    for _ in range(256):  # real files reach SOF within a few segments; this bounds a hostile header
        while pos < end and data[pos] == 0xFF and pos + 1 < end and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 4 > end or data[pos] != 0xFF:
            return None
        marker = int(data[pos + 1])
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker == _JPEG_SOS:
            return None
        length = (int(data[pos + 2]) << 8) | int(data[pos + 3])
        if marker in _JPEG_SOF:
            if pos + 9 > end:
                return None
            height = (int(data[pos + 5]) << 8) | int(data[pos + 6])
            width = (int(data[pos + 7]) << 8) | int(data[pos + 8])
            return width, height
        if length < 2:
            return None
        pos += 2 + length
    return None


def _check_size(width: int, height: int, what: str) -> None:
    """InputRejected(bad_size) for a size ``size_problem`` refuses."""
    problem = size_problem(width, height)
    if problem is not None:
        raise InputRejected("bad_size", f"CompressedImage {what} {problem}")


def _color_order(fmt: str) -> ColorOrder:
    """``"rgb"`` only when the format names rgb8 as the stored order (``... compressed rgb8``), else ``"bgr"``."""
    _, sep, stored = fmt.lower().partition("compressed")
    return "rgb" if sep and stored.strip().startswith("rgb") else "bgr"

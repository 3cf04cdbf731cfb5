"""sensor_msgs/Image <-> numpy without cv_bridge: decode camera images, encode depth and color images.

Decoding honours ``step`` (row padding) and returns views of ``msg.data`` where the layout allows
(3-channel encodings); anything unusable raises ``InputRejected`` with a counter key. Encoders
return dicts of Image fields (``Image(header=h, **fields)``); ``data`` is an ``array('B')`` (see
``buffers``). ``compressed_msg_to_array`` lives in ``compressed_codec`` and is re-exported here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from dav2_ros.model.config import ColorOrder
from dav2_ros.conversions.buffers import ReusedByteArrays, byte_view, to_byte_array
from dav2_ros.conversions.compressed_codec import compressed_msg_to_array
from dav2_ros.errors import MAX_SIDE, InputRejected, size_problem


__all__ = [
    "MAX_SIDE",
    "SUPPORTED_ENCODINGS",
    "bgr_to_image_fields",
    "compressed_msg_to_array",
    "depth_msg_to_array",
    "depth_to_image_fields",
    "image_msg_to_array",
]


@dataclass(frozen=True)
class _Layout:
    """How one 8-bit encoding is laid out: channels per pixel and the color order of the first three."""

    channels: int
    order: ColorOrder


# Generic OpenCV types are read the way cv::Mat stores color: 8UC3 = BGR, 8UC4 = BGRA, 8UC1 = gray.
_LAYOUTS: dict[str, _Layout] = {
    "rgb8": _Layout(3, "rgb"),
    "bgr8": _Layout(3, "bgr"),
    "rgba8": _Layout(4, "rgb"),
    "bgra8": _Layout(4, "bgr"),
    "mono8": _Layout(1, "rgb"),
    "8uc3": _Layout(3, "bgr"),
    "8uc4": _Layout(4, "bgr"),
    "8uc1": _Layout(1, "rgb"),
}

#: Camera image encodings ``image_msg_to_array`` accepts (compared case-insensitively).
SUPPORTED_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC3", "8UC4", "8UC1")

# Depth encodings ``depth_msg_to_array`` accepts: (dtype of one pixel, factor to meters).
_DEPTH_LAYOUTS: dict[str, tuple[np.dtype, float]] = {
    "32fc1": (np.dtype(np.float32), 1.0),
    "16uc1": (np.dtype(np.uint16), 0.001),
    "mono16": (np.dtype(np.uint16), 0.001),
}


def image_msg_to_array(msg: Any) -> tuple[np.ndarray, ColorOrder]:
    """A camera Image as an HxWx3 uint8 array and its color order.

    rgb8/bgr8/8UC3 come back as a view of ``msg.data`` (read-only when the data is ``bytes``; copy
    before writing). rgba8/bgra8/8UC4 drop alpha and mono8/8UC1 are repeated to three channels
    (one copy each). ``is_bigendian`` is ignored: byte order does not exist for 8-bit channels.

    Raises:
        InputRejected: ``unsupported_encoding`` (e.g. 16UC1, 32FC1, bayer_rggb8, yuv422),
            ``bad_size`` (a side of 0 or above ``MAX_SIDE``, or more than ``MAX_PIXELS``),
            ``bad_step`` (step < width x channels), ``bad_data_size`` (data length != height x
            step), ``bad_data``.
    """
    encoding = msg.encoding
    layout = _LAYOUTS.get(encoding.lower()) if isinstance(encoding, str) else None
    if layout is None:
        raise InputRejected(
            "unsupported_encoding",
            f"Image encoding {encoding!r} is not supported; use one of {', '.join(SUPPORTED_ENCODINGS)}",
        )
    rows, width = _row_view(msg, layout.channels)
    pixels = rows[:, : width * layout.channels].reshape(rows.shape[0], width, layout.channels)
    if layout.channels == 3:
        return pixels, layout.order
    if layout.channels == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR), layout.order
    return cv2.cvtColor(pixels[:, :, 0], cv2.COLOR_GRAY2BGR), layout.order


def depth_msg_to_array(msg: Any) -> np.ndarray:
    """A depth Image (32FC1 meters, or 16UC1/mono16 millimeters) as HxW float32 meters, NaN where invalid.

    Honours ``step`` and ``is_bigendian``; 0 (16-bit "no return") and non-finite values become NaN.
    Used to read ground truth and this package's own output.

    Raises:
        InputRejected: the same reasons as ``image_msg_to_array``.
    """
    encoding = msg.encoding
    layout = _DEPTH_LAYOUTS.get(encoding.lower()) if isinstance(encoding, str) else None
    if layout is None:
        raise InputRejected(
            "unsupported_encoding", f"depth Image encoding {encoding!r} is not supported; use 32FC1, 16UC1 or mono16"
        )
    dtype, to_meters = layout
    rows, width = _row_view(msg, dtype.itemsize)
    dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    values = np.ascontiguousarray(rows[:, : width * dtype.itemsize]).view(dtype)
    depth = values.astype(np.float32)
    if dtype.kind == "u":
        depth[values == 0] = np.nan
        depth *= np.float32(to_meters)
    depth[~np.isfinite(depth)] = np.nan
    return depth


def _row_view(msg: Any, bytes_per_pixel: int) -> tuple[np.ndarray, int]:
    """``msg.data`` as a (height, step) uint8 view after checking sizes, step and data length."""
    width, height, step = (_as_int(msg, name) for name in ("width", "height", "step"))
    problem = size_problem(width, height)
    if problem is not None:
        raise InputRejected("bad_size", f"Image {problem}")
    if step < width * bytes_per_pixel:
        raise InputRejected(
            "bad_step",
            f"Image step {step} is smaller than width {width} x {bytes_per_pixel} bytes per pixel "
            f"(encoding {msg.encoding!r})",
        )
    data = byte_view(msg.data)
    if data.size != height * step:
        raise InputRejected(
            "bad_data_size",
            f"Image data has {data.size} bytes, expected height {height} x step {step} = {height * step}",
        )
    return data.reshape(height, step), width


def _as_int(msg: Any, name: str) -> int:
    """An integer field of the message; InputRejected(bad_size / bad_step) if it is not an integer."""
    value = getattr(msg, name)
    reason = "bad_step" if name == "step" else "bad_size"
    try:
        as_int = int(value)
    except (TypeError, ValueError, OverflowError):
        raise InputRejected(reason, f"Image {name} must be an integer, got {value!r}") from None
    if as_int != value or isinstance(value, bool):
        raise InputRejected(reason, f"Image {name} must be an integer, got {value!r}")
    return as_int


def depth_to_image_fields(depth: np.ndarray, buffers: ReusedByteArrays | None = None) -> dict[str, Any]:
    """Image fields for an HxW depth (or inverse-depth) map: 32FC1 in native byte order, unpadded rows. With
    `buffers`, ``data`` is one of its reused arrays (one copy of the depth, no allocation)."""
    if depth.ndim != 2:
        raise ValueError(f"depth must be a 2-D array, got shape {depth.shape}")
    height, width = depth.shape
    if buffers is not None:
        data = buffers.take(4 * height * width, key="32FC1")
        np.frombuffer(data, dtype=np.float32).reshape(height, width)[...] = depth
    else:
        data = to_byte_array(np.ascontiguousarray(depth, dtype=np.float32))
    return {
        "height": height,
        "width": width,
        "encoding": "32FC1",
        "is_bigendian": int(sys.byteorder == "big"),
        "step": 4 * width,
        "data": data,
    }


def bgr_to_image_fields(bgr: np.ndarray) -> dict[str, Any]:
    """Image fields for an HxWx3 uint8 BGR image (bgr8, unpadded rows)."""
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got {bgr.dtype} {bgr.shape}")
    height, width = bgr.shape[:2]
    return {
        "height": height,
        "width": width,
        "encoding": "bgr8",
        "is_bigendian": 0,
        "step": 3 * width,
        "data": to_byte_array(bgr),
    }

"""Malformed camera messages for the robustness tests: a frame with fields replaced, a PNG that declares a size it
does not hold, a CompressedImage of given bytes."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from camera_frame import Camera


def altered_raw(camera: Camera, stamp: float, **fields: Any) -> Image:
    """The camera's frame with some fields replaced (data: bytes, or an int = that many random bytes)."""
    msg = camera.image(stamp)
    values = dict(height=msg.height, width=msg.width, encoding=msg.encoding, is_bigendian=0, step=msg.step,
                  data=bytes(msg.data))
    values.update(fields)
    if isinstance(values["data"], int):
        values["data"] = bytes(np.random.default_rng(values["data"]).integers(0, 256, values["data"], np.uint8))
    return Image(header=msg.header, **values)


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring `width` x `height` (RGB, 8 bit), with a valid CRC, no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))


def compressed_frame(camera: Camera, stamp: float, fmt: str, data: bytes) -> CompressedImage:
    """A CompressedImage with the camera's header at `stamp`, `fmt` and these bytes."""
    return CompressedImage(header=camera.header(stamp), format=fmt, data=data)

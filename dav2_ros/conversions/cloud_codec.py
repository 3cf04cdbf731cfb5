"""PointCloud2 -> x y z points (numpy only; reads any message object with the PointCloud2 fields: rclpy or rosbags).

Reads the ``x``, ``y``, ``z`` fields wherever ``fields`` puts them (FLOAT32 or FLOAT64), honouring ``point_step``,
``row_step`` and ``is_bigendian``, for organized and unorganized clouds alike; the other fields are ignored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dav2_ros.conversions.buffers import byte_view
from dav2_ros.errors import InputRejected

# sensor_msgs/PointField datatypes this decoder reads.
_FLOAT_TYPES = {7: "f4", 8: "f8"}
#: Clouds above this many points are refused (a 64-beam LiDAR gives ~130k per scan).
MAX_POINTS = 16_000_000


def cloud_msg_to_xyz(msg: Any) -> np.ndarray:
    """The points of a PointCloud2 as an (N, 3) float32 array (NaN/inf points kept; the caller filters).

    Raises:
        InputRejected: ``no_xyz_fields`` (x, y or z missing or not float), ``bad_size`` (width/height/point_step
            that cannot hold the fields), ``bad_data_size`` (data shorter than row_step x height).
    """
    try:
        fields = {str(f.name): (int(f.offset), int(f.datatype), int(getattr(f, "count", 1) or 1)) for f in msg.fields}
        width, height = int(msg.width), int(msg.height)
        point_step, row_step = int(msg.point_step), int(msg.row_step)
        big_endian = bool(msg.is_bigendian)
    except (AttributeError, TypeError, ValueError) as error:
        raise InputRejected("bad_data", f"not a PointCloud2 ({error})") from None
    missing = [name for name in "xyz" if name not in fields or fields[name][1] not in _FLOAT_TYPES]
    if missing:
        listing = ", ".join(f"{name} (type {value[1]})" for name, value in fields.items()) or "none"
        raise InputRejected("no_xyz_fields", f"PointCloud2 has no FLOAT32/FLOAT64 field {', '.join(missing)}; "
                                             f"fields: {listing}")
    if width < 0 or height < 0 or width * height > MAX_POINTS:
        raise InputRejected("bad_size", f"PointCloud2 is {width}x{height} points")
    for name in "xyz":
        offset, datatype, _ = fields[name]
        if offset < 0 or offset + np.dtype(_FLOAT_TYPES[datatype]).itemsize > point_step:
            raise InputRejected("bad_size", f"field {name} at offset {offset} does not fit point_step {point_step}")
    if row_step < width * point_step:
        raise InputRejected("bad_size", f"row_step {row_step} is smaller than width {width} x point_step {point_step}")
    data = byte_view(msg.data)
    if data.size < row_step * height:
        raise InputRejected("bad_data_size", f"PointCloud2 data has {data.size} bytes, {row_step * height} expected "
                                             f"(row_step {row_step} x height {height})")
    if width * height == 0:
        return np.zeros((0, 3), np.float32)
    rows = data[: row_step * height].reshape(height, row_step)[:, : width * point_step].reshape(height * width,
                                                                                                point_step)
    order = ">" if big_endian else "<"
    columns = []
    for name in "xyz":
        offset, datatype, _ = fields[name]
        dtype = np.dtype(_FLOAT_TYPES[datatype]).newbyteorder(order)
        raw = np.ascontiguousarray(rows[:, offset: offset + dtype.itemsize])
        columns.append(raw.view(dtype).reshape(-1).astype(np.float32))
    return np.stack(columns, axis=1)

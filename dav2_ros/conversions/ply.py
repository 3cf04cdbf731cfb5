"""PointCloud2 bytes -> a binary PLY file a person can open (MeshLab, CloudCompare, Open3D).

Reads the cloud through its own field table (any point_step / offsets), keeps the finite
points and writes x y z float32 (+ red green blue uint8 when the cloud has a packed `rgb`).
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

_FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32


def cloud_to_arrays(msg: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(N x 3 float32 xyz of the finite points, N x 3 uint8 RGB or None) from a PointCloud2-like message."""
    offsets = {f.name: f.offset for f in msg.fields if f.datatype == _FLOAT32}
    missing = {"x", "y", "z"} - offsets.keys()
    if missing:
        raise ValueError(f"cloud has no FLOAT32 field(s) {sorted(missing)}")
    count = msg.width * msg.height
    endian = ">" if msg.is_bigendian else "<"
    names = [name for name in ("x", "y", "z", "rgb") if name in offsets]
    dtype = np.dtype({"names": names, "formats": [endian + ("u4" if n == "rgb" else "f4") for n in names],
                      "offsets": [offsets[n] for n in names], "itemsize": msg.point_step})
    rows = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data.tobytes(),
                         dtype=np.uint8).reshape(msg.height, msg.row_step)[:, : msg.width * msg.point_step]
    points = np.ascontiguousarray(rows).view(dtype).reshape(count)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=-1).astype(np.float32)
    keep = np.isfinite(xyz).all(axis=1)
    if "rgb" not in names:
        return xyz[keep], None
    packed = points["rgb"][keep]
    rgb = np.stack([(packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF], axis=-1).astype(np.uint8)
    return xyz[keep], rgb


def write_ply(path: str | pathlib.Path, xyz: np.ndarray, rgb: np.ndarray | None = None) -> pathlib.Path:
    """Write points (and colors) as binary little-endian PLY; returns the path."""
    path = pathlib.Path(path)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if rgb is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertices = np.empty(len(xyz), dtype=fields)
    vertices["x"], vertices["y"], vertices["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    if rgb is not None:
        vertices["red"], vertices["green"], vertices["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    types = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(xyz)}"]
    header += [f"property {types[kind]} {name}" for name, kind in fields]
    header.append("end_header")
    with open(path, "wb") as out:
        out.write(("\n".join(header) + "\n").encode("ascii"))
        out.write(vertices.tobytes())
    return path

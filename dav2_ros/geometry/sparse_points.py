"""Where a sparse depth sensor's measurements fall in the camera image (numpy only).

Both sparse inputs end as the same samples: pixel rows, columns and metric depths at the camera image's size.

- A registered sparse depth image of the image's size is read as is; one of another size with the same aspect
  ratio (a half-resolution depth stream) has each valid pixel moved to the image pixel whose centre matches,
  the pixel-centre-consistent mapping CameraInfo scaling uses (``u' = (u + 0.5) * s - 0.5``). Depths are never
  interpolated (that would mix a foreground and a background depth into a depth that exists nowhere).
- A point cloud in the camera's optical frame (x right, y down, z forward) is projected with the intrinsics;
  where several points land on one pixel the nearest wins (it hides the others from the camera too).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Largest relative difference of the x and y scale factors for a sparse image to count as "the same aspect".
ASPECT_TOLERANCE = 0.01


class SparseSamples(NamedTuple):
    """Sparse metric depths at pixels of the camera image (int64 rows and columns, float32 meters, all > 0)."""

    rows: np.ndarray
    cols: np.ndarray
    depth: np.ndarray

    @property
    def count(self) -> int:
        """How many samples."""
        return int(self.depth.size)

    def as_map(self, width: int, height: int) -> np.ndarray:
        """The samples as an HxW float32 map, NaN elsewhere."""
        sparse = np.full((height, width), np.nan, np.float32)
        sparse[self.rows, self.cols] = self.depth
        return sparse


def samples_from_depth_image(sparse: np.ndarray, width: int, height: int) -> SparseSamples:
    """The finite, positive pixels of a sparse depth image, at an image of ``width`` x ``height``.

    Raises:
        ValueError: the sparse image's aspect ratio is not the image's (it cannot be registered to it).
    """
    sparse_height, sparse_width = sparse.shape
    with np.errstate(invalid="ignore"):
        rows, cols = np.nonzero(np.isfinite(sparse) & (sparse > 0))
    depth = sparse[rows, cols].astype(np.float32)
    if (sparse_width, sparse_height) == (width, height):
        return SparseSamples(rows.astype(np.int64), cols.astype(np.int64), depth)
    sx, sy = width / sparse_width, height / sparse_height
    rounding = 1.0 / min(width, height, sparse_width, sparse_height)
    if abs(sx - sy) / max(sx, sy) > ASPECT_TOLERANCE + rounding:
        raise ValueError(f"the sparse depth image is {sparse_width}x{sparse_height} but the camera image is "
                         f"{width}x{height}: not the same aspect ratio, so it is not registered to this image")
    u = np.rint((cols + 0.5) * sx - 0.5).astype(np.int64)
    v = np.rint((rows + 0.5) * sy - 0.5).astype(np.int64)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    return _nearest_per_pixel(v[inside], u[inside], depth[inside], width)


def project_points(xyz: np.ndarray, fx: float, fy: float, cx: float, cy: float, width: int,
                   height: int) -> SparseSamples:
    """Points (N x 3, optical frame, meters) projected into a ``width`` x ``height`` pinhole image: the pixel of
    each point in front of the camera, its z as the depth; the nearest point per pixel."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        front = np.isfinite(xyz).all(axis=1) & (xyz[:, 2] > 0)
        x, y, z = xyz[front, 0], xyz[front, 1], xyz[front, 2]
        u = np.rint(fx * x / z + cx)
        v = np.rint(fy * y / z + cy)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    return _nearest_per_pixel(v[inside].astype(np.int64), u[inside].astype(np.int64),
                              z[inside].astype(np.float32), width)


def transform_points(xyz: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """``rotation @ p + translation`` for every point (N x 3)."""
    return np.asarray(xyz, dtype=np.float64) @ np.asarray(rotation, dtype=np.float64).T + np.asarray(translation)


def rotation_from_quaternion(x: float, y: float, z: float, w: float) -> np.ndarray:
    """The 3x3 rotation of a unit quaternion (geometry_msgs/Quaternion order x, y, z, w); normalized first."""
    q = np.array([x, y, z, w], dtype=np.float64)
    norm = np.linalg.norm(q)
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"quaternion {q.tolist()} is not a rotation")
    x, y, z, w = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _nearest_per_pixel(rows: np.ndarray, cols: np.ndarray, depth: np.ndarray, width: int) -> SparseSamples:
    """One sample per pixel: the smallest depth among those that share it."""
    if depth.size == 0:
        return SparseSamples(rows, cols, depth)
    order = np.lexsort((depth, rows * width + cols))  # by pixel, then by depth
    keys = (rows * width + cols)[order]
    first = np.ones(keys.size, bool)
    first[1:] = keys[1:] != keys[:-1]
    keep = order[first]
    return SparseSamples(rows[keep], cols[keep], depth[keep])

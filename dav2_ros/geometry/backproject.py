"""Back-projection of a depth image to 3-D points in the camera's optical frame (REP 103/118).

Optical frame: x right, y down, z forward. For the pixel in column ``u`` and row ``v`` with depth
``z`` (meters along the optical axis): ``x = (u - cx) * z / fx``, ``y = (v - cy) * z / fy`` --
the same formula depth_image_proc's ``convert`` uses. NaN depth gives NaN x, y and z.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from dav2_ros.geometry.intrinsics import Intrinsics


def kept_pixels(height: int, width: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``v`` and columns ``u`` kept by a stride: ``0, s, 2s, ...`` (the same as ``depth[::s, ::s]``).

    The decimated grid therefore has ``ceil(H / s)`` rows and ``ceil(W / s)`` columns.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return np.arange(0, height, stride), np.arange(0, width, stride)


@lru_cache(maxsize=16)
def _rays(intr: Intrinsics, height: int, width: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column ``(u - cx) / fx`` and per-row ``(v - cy) / fy`` (float32, read-only), cached per geometry.

    Two 1-D vectors instead of a meshgrid: broadcasting them against the depth image costs no
    per-frame allocation beyond the output.
    """
    rows, cols = kept_pixels(height, width, stride)
    ray_x = ((cols - intr.cx) / intr.fx).astype(np.float32)[np.newaxis, :]
    ray_y = ((rows - intr.cy) / intr.fy).astype(np.float32)[:, np.newaxis]
    ray_x.flags.writeable = False
    ray_y.flags.writeable = False
    return ray_x, ray_y


def ray_arrays(intr: Intrinsics, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """`backproject`'s rays for the image `intr` describes (read-only, cached): per-column ``(u - cx) / fx`` (1, w)
    and per-row ``(v - cy) / fy`` (h, 1); the on-device path back-projects with the same ones."""
    return _rays(intr, intr.height, intr.width, stride)


def backproject(
    depth: np.ndarray, intr: Intrinsics, stride: int = 1, out: np.ndarray | None = None
) -> np.ndarray:
    """3-D points (float32, shape ``ceil(H/s) x ceil(W/s) x 3``) of a depth image, organized like the image.

    Args:
        depth: HxW depth in meters along the optical axis (float32 preferred); NaN where invalid.
        intr: intrinsics of exactly this depth image (same width and height; scale them first).
        stride: keep every ``stride``-th row and column, starting at 0; each kept point uses its
            own pixel coordinates ``(u, v)`` in the full image.
        out: optional float32 array of the output shape to write into (reused between frames);
            may be a view, e.g. the first three floats of a padded point buffer.

    Returns:
        ``out`` (or a new array) with ``[..., 0] = x``, ``[..., 1] = y``, ``[..., 2] = z``.
    """
    if depth.ndim != 2:
        raise ValueError(f"depth must be a 2-D array, got shape {depth.shape}")
    height, width = depth.shape
    if (width, height) != (intr.width, intr.height):
        raise ValueError(
            f"intrinsics are for {intr.width}x{intr.height} but the depth image is {width}x{height}; "
            "use Intrinsics.scaled_to first"
        )
    ray_x, ray_y = _rays(intr, height, width, stride)
    z = depth[::stride, ::stride]
    shape = (ray_y.shape[0], ray_x.shape[1], 3)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 of shape {shape}, got {out.dtype} {out.shape}")
    np.multiply(z, ray_x, out=out[..., 0], casting="same_kind")
    np.multiply(z, ray_y, out=out[..., 1], casting="same_kind")
    out[..., 2] = z
    return out

"""Depth validity masking and back-projection as torch ops, so they run where the depth already is (the GPU).

The same arithmetic as `dav2_ros.geometry.colorize.depth_range_mask` and `dav2_ros.geometry.backproject`
(numpy, float32): rays ``(u - cx) / fx`` and ``(v - cy) / fy`` computed in float64 and rounded to float32 once,
then ``x = z * ray_x``, ``y = z * ray_y`` in float32 -- the rays are geometry's own (`ray_arrays`), so both paths
give the same bits. Kept here (torch only) rather than in `geometry` (numpy only, a lower layer).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dav2_ros.geometry.backproject import ray_arrays
from dav2_ros.geometry.intrinsics import Intrinsics


def rays(camera: Intrinsics, stride: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """`geometry.backproject.ray_arrays` as float32 tensors on `device`."""
    ray_x, ray_y = ray_arrays(camera, stride)
    return torch.tensor(ray_x, device=device), torch.tensor(ray_y, device=device)


def mask_depth_(depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """In place: NaN wherever depth is outside ``[min_depth, max_depth]`` or not finite. Returns `depth`."""
    if not (np.isfinite(min_depth) and 0.0 <= min_depth < max_depth):
        raise ValueError(f"need 0 <= min_depth < max_depth (min finite), got {min_depth}, {max_depth}")
    invalid = ~((depth >= min_depth) & (depth <= max_depth))  # NaN compares False: it stays invalid
    return depth.masked_fill_(invalid, float("nan"))


def backproject_(depth: torch.Tensor, ray_x: torch.Tensor, ray_y: torch.Tensor, stride: int,
                 out: torch.Tensor) -> torch.Tensor:
    """Points of a (H, W) depth tensor written into `out` (h, w, C >= 3; x, y, z in its first three channels).

    Args:
        depth: (H, W) float32 meters along the optical axis, NaN where invalid.
        ray_x, ray_y: from `rays` for this depth size and stride.
        stride: keep every stride-th row and column, starting at 0.
        out: (ceil(H/s), ceil(W/s), C) float32 on depth's device; channels beyond 3 are left untouched.
    """
    z = depth[::stride, ::stride]
    if out.shape[:2] != z.shape or out.shape[2] < 3 or out.dtype != torch.float32:
        raise ValueError(f"out must be float32 of shape {tuple(z.shape)} x (>= 3), got {out.dtype} {tuple(out.shape)}")
    torch.mul(z, ray_x, out=out[..., 0])
    torch.mul(z, ray_y, out=out[..., 1])
    out[..., 2].copy_(z)
    return out


def _window_extreme(values: torch.Tensor, radius: int, fill: float, reduce) -> torch.Tensor:
    """`reduce` (torch.maximum / torch.minimum) over the (2r+1)x(2r+1) window of every pixel of (..., H, W); outside
    is `fill`. Separable shifted slices, as the numpy version: faster than max_pool2d on a CPU, the same values."""
    height, width = values.shape[-2:]
    padded = F.pad(values, (radius, radius, radius, radius), value=fill)
    rows = padded[..., :, 0:width]
    for k in range(1, 2 * radius + 1):
        rows = reduce(rows, padded[..., :, k:k + width])
    out = rows[..., 0:height, :]
    for k in range(1, 2 * radius + 1):
        out = reduce(out, rows[..., k:k + height, :])
    return out


def edge_keep(depth: torch.Tensor, threshold: float, dilation: int) -> torch.Tensor:
    """`dav2_ros.geometry.depth_filters.edge_mask` as torch ops on (B, H, W) or (H, W) depth: True = keep, False on
    a relative jump above `threshold` to a 3x3 neighbour (widened by `dilation` px) and where depth is not finite or
    not positive. Comparisons of the same float32 products as the numpy version, so both give the same mask."""
    valid = torch.isfinite(depth) & (depth > 0)
    high = depth.masked_fill(~valid, 0.0)
    low = depth.masked_fill(~valid, float("inf"))
    factor = float(np.float32(1.0 + threshold))  # a scalar (no host-to-device copy: CUDA graphs capture this)
    near_max = _window_extreme(high, 1, 0.0, torch.maximum)
    near_min = _window_extreme(low, 1, float("inf"), torch.minimum)
    edge = ((near_max > high * factor) | (high > near_min * factor)) & valid
    if dilation:
        edge = _window_extreme(edge.to(torch.uint8), dilation, 0, torch.maximum) > 0
    return valid & ~edge

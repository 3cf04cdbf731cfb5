"""PLY export: the points read back from PointCloud2 bytes and from the written file equal the input."""

from types import SimpleNamespace

import numpy as np

from dav2_ros.conversions.ply import cloud_to_arrays, write_ply
from dav2_ros.conversions.pointcloud import pointcloud_fields


def _cloud(rgb: bool) -> tuple[np.ndarray, np.ndarray, SimpleNamespace]:
    rng = np.random.default_rng(3)
    xyz = rng.uniform(-5, 5, size=(4, 6, 3)).astype(np.float32)
    xyz[1, 2] = np.nan
    bgr = rng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
    msg = SimpleNamespace(**pointcloud_fields(xyz, bgr if rgb else None))
    return xyz, bgr, msg


def test_cloud_to_arrays_keeps_finite_points_and_unpacks_rgb():
    xyz, bgr, msg = _cloud(rgb=True)
    points, colors = cloud_to_arrays(msg)
    finite = np.isfinite(xyz).all(axis=-1)
    assert points.shape == (int(finite.sum()), 3)
    np.testing.assert_array_equal(points, xyz[finite])
    np.testing.assert_array_equal(colors, bgr[finite][:, ::-1])  # RGB out, BGR in


def test_write_ply_round_trip(tmp_path):
    xyz, _, msg = _cloud(rgb=False)
    points, colors = cloud_to_arrays(msg)
    assert colors is None
    path = write_ply(tmp_path / "cloud.ply", points)
    raw = path.read_bytes()
    header, body = raw.split(b"end_header\n", 1)
    assert f"element vertex {len(points)}".encode() in header
    np.testing.assert_array_equal(np.frombuffer(body, dtype="<f4").reshape(-1, 3), points)

"""PointCloud2 fields: depth_image_proc's layout, bytes decoded independently from the field table."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from dav2_ros.conversions.buffers import ReusedByteArrays
from dav2_ros.conversions.pointcloud import FieldSpec, pack_rgb, pointcloud_fields
from dav2_ros.geometry.backproject import backproject
from dav2_ros.geometry.intrinsics import Intrinsics

FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32


def read_field(fields: dict, name: str, dtype: str = "<f4") -> np.ndarray:
    """One field of every point, located only through the message's own field table and steps."""
    (spec,) = [f for f in fields["fields"] if f.name == name]
    raw = np.frombuffer(fields["data"], dtype=np.uint8)
    assert raw.size == fields["height"] * fields["row_step"]
    rows = raw.reshape(fields["height"], fields["row_step"])[:, : fields["width"] * fields["point_step"]]
    points = rows.reshape(fields["height"], fields["width"], fields["point_step"])
    return np.ascontiguousarray(points[:, :, spec.offset : spec.offset + 4]).view(dtype)[..., 0]


@pytest.fixture
def cloud_input():
    rng = np.random.default_rng(5)
    depth = rng.uniform(0.3, 9.0, size=(12, 16)).astype(np.float32)
    depth[3, 4] = np.nan
    depth[0, :3] = np.nan
    intr = Intrinsics(14.1, 13.8, 7.6, 5.4, 16, 12)
    return depth, intr


def test_xyz_layout_is_depth_image_procs(cloud_input):
    depth, intr = cloud_input
    fields = pointcloud_fields(backproject(depth, intr))
    assert fields["fields"] == [
        FieldSpec("x", 0, FLOAT32, 1),
        FieldSpec("y", 4, FLOAT32, 1),
        FieldSpec("z", 8, FLOAT32, 1),
    ]
    assert (fields["height"], fields["width"], fields["point_step"], fields["row_step"]) == (12, 16, 16, 256)
    assert fields["is_bigendian"] is False and fields["is_dense"] is False
    assert len(fields["data"]) == 12 * 16 * 16


@pytest.mark.parametrize("stride", [1, 3])
def test_decoded_points_equal_the_back_projection(cloud_input, stride):
    depth, intr = cloud_input
    xyz = backproject(depth, intr, stride)
    fields = pointcloud_fields(xyz)
    decoded = np.stack([read_field(fields, axis) for axis in "xyz"], axis=-1)
    assert decoded.shape == depth[::stride, ::stride].shape + (3,)
    np.testing.assert_array_equal(decoded, xyz)  # bit-exact, NaN included
    assert np.isnan(decoded[np.isnan(depth[::stride, ::stride])]).all()
    # And against the formula, computed here from the depth and the intrinsics:
    v, u = np.mgrid[0 : depth.shape[0] : stride, 0 : depth.shape[1] : stride]
    z = depth[::stride, ::stride].astype(np.float64)
    np.testing.assert_allclose(decoded[..., 0], (u - intr.cx) * z / intr.fx, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(decoded[..., 1], (v - intr.cy) * z / intr.fy, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_padding_bytes_are_zero(cloud_input):
    depth, intr = cloud_input
    rgb = np.full(depth.shape + (3,), 255, np.uint8)
    fields = pointcloud_fields(backproject(depth, intr), rgb)
    raw = np.frombuffer(fields["data"], np.uint8).reshape(-1, 32)
    assert not raw[:, 12:16].any() and not raw[:, 20:32].any()
    assert (raw[:, 16:19] == 255).all() and not raw[:, 19].any()  # b, g, r, then a zero byte


def test_rgb_is_packed_0x00RRGGBB_bit_exactly(cloud_input):
    depth, intr = cloud_input
    rng = np.random.default_rng(9)
    bgr = rng.integers(0, 256, size=depth.shape + (3,), dtype=np.uint8)
    fields = pointcloud_fields(backproject(depth, intr), bgr)
    assert fields["fields"][-1] == FieldSpec("rgb", 16, FLOAT32, 1)
    assert fields["point_step"] == 32 and fields["row_step"] == 32 * 16
    packed = read_field(fields, "rgb", "<u4")
    red, green, blue = (packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF
    np.testing.assert_array_equal(red, bgr[..., 2])
    np.testing.assert_array_equal(green, bgr[..., 1])
    np.testing.assert_array_equal(blue, bgr[..., 0])
    assert not (packed >> 24).any()
    # The float32 view of one point, built by hand with struct, has the same bits.
    b, g, r = (int(c) for c in bgr[2, 5])
    as_float = struct.unpack("<f", struct.pack("<I", (r << 16) | (g << 8) | b))[0]
    got = read_field(fields, "rgb")[2, 5]
    assert got.tobytes() == np.float32(as_float).tobytes()
    # The xyz part is unchanged by adding color.
    np.testing.assert_array_equal(read_field(fields, "z"), backproject(depth, intr)[..., 2])


def test_pack_rgb_by_hand():
    assert pack_rgb(np.array([0x33, 0x22, 0x11], np.uint8)) == 0x112233  # B=0x33 G=0x22 R=0x11


def test_refuses_mismatched_inputs(cloud_input):
    depth, intr = cloud_input
    xyz = backproject(depth, intr)
    with pytest.raises(ValueError):
        pointcloud_fields(xyz[..., :2])
    with pytest.raises(ValueError):
        pointcloud_fields(xyz, np.zeros((2, 2, 3), np.uint8))


def test_fields_build_a_real_rclpy_pointcloud2(cloud_input):
    sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 Python messages) not installed")
    depth, intr = cloud_input
    fields = pointcloud_fields(backproject(depth, intr), np.zeros(depth.shape + (3,), np.uint8))
    fields["fields"] = [sensor_msgs.PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                        for f in fields["fields"]]
    msg = sensor_msgs.PointCloud2(**fields)
    assert msg.fields[3].datatype == sensor_msgs.PointField.FLOAT32 == FLOAT32
    assert len(msg.data) == msg.row_step * msg.height


def read_points(fields: dict) -> np.ndarray:
    """sensor_msgs_py.point_cloud2.read_points' way: a structured dtype from the field table (names, offsets,
    itemsize = point_step), every field read by name wherever it lies."""
    dtype = np.dtype({"names": [f.name for f in fields["fields"]], "formats": ["<f4"] * len(fields["fields"]),
                      "offsets": [f.offset for f in fields["fields"]], "itemsize": fields["point_step"]})
    return np.frombuffer(fields["data"], dtype=dtype).reshape(fields["height"], fields["width"])


@pytest.mark.parametrize("colored", [False, True], ids=["xyz", "xyzrgb"])
def test_the_compact_layout_reads_by_name_as_the_depth_image_proc_layout(cloud_input, colored):
    depth, intr = cloud_input
    xyz = backproject(depth, intr)
    bgr = np.random.default_rng(1).integers(0, 256, size=xyz.shape, dtype=np.uint8) if colored else None
    compact = pointcloud_fields(xyz, bgr, layout="compact")
    padded = pointcloud_fields(xyz, bgr, layout="depth_image_proc")
    assert (compact["point_step"], padded["point_step"]) == ((16, 32) if colored else (12, 16))
    assert len(compact["data"]) * (2 if colored else 4 / 3) == len(padded["data"])
    assert [f.name for f in compact["fields"]] == [f.name for f in padded["fields"]]
    a, b = read_points(compact), read_points(padded)
    for name in a.dtype.names:
        assert np.array_equal(a[name].view(np.uint32), b[name].view(np.uint32)), name  # bit for bit, NaN included
    if colored:
        assert np.array_equal(a["rgb"].view(np.uint32), pack_rgb(bgr))


@pytest.mark.parametrize("layout", ["compact", "depth_image_proc"])
@pytest.mark.parametrize("colored", [False, True], ids=["xyz", "xyzrgb"])
def test_reused_payloads_give_the_same_bytes_as_fresh_ones(cloud_input, layout, colored):
    """Frame after frame from a pool (across a layout change too): every message's bytes are those of a fresh,
    zeroed array -- padding included."""
    depth, intr = cloud_input
    pool = ReusedByteArrays()
    rng = np.random.default_rng(2)
    for step in range(5):
        xyz = backproject(depth * (1 + step), intr)
        bgr = rng.integers(0, 256, size=xyz.shape, dtype=np.uint8) if colored else None
        other = "depth_image_proc" if layout == "compact" else "compact"
        pointcloud_fields(xyz, bgr, layout=other, buffers=pool)  # the pool served another layout meanwhile
        reused = pointcloud_fields(xyz, bgr, layout=layout, buffers=pool)
        assert bytes(reused["data"]) == bytes(pointcloud_fields(xyz, bgr, layout=layout)["data"])
        del reused  # the message is gone: its array may serve the next frame
    assert pool.allocations == 2  # one per kind, then reuse


def test_a_reused_array_is_never_changed_while_something_holds_it(cloud_input):
    depth, intr = cloud_input
    pool = ReusedByteArrays(slots=2)
    held = []  # messages someone keeps (a queue, a caller): their payload must not change
    for step in range(6):
        fields = pointcloud_fields(backproject(depth + step, intr), layout="compact", buffers=pool)
        if step % 2 == 0:
            held.append((fields["data"], bytes(fields["data"])))
    for data, copy in held:
        assert bytes(data) == copy
    allocations = pool.allocations
    held.clear()
    del fields
    for step in range(4):  # nobody holds them now: the pool stops allocating
        pointcloud_fields(backproject(depth, intr), layout="compact", buffers=pool)
    assert pool.allocations == allocations


def test_an_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="cloud layout"):
        pointcloud_fields(np.zeros((2, 2, 3), np.float32), layout="zed")

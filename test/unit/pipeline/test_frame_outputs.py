"""frame_outputs: which outputs a processed frame has (the node and bag_to_depth both follow it) and their fields."""

from __future__ import annotations

import numpy as np

import pytest

from dav2_ros.pipeline.frame_outputs import OUTPUT_MESSAGES, OUTPUT_NAMES, expected_outputs, frame_outputs
from dav2_ros.geometry.intrinsics import Intrinsics
from dav2_ros.pipeline.processing import FrameResult, cloud_colors
from dav2_ros.pipeline.settings import NodeSettings

INTRINSICS = Intrinsics(fx=50.0, fy=50.0, cx=3.5, cy=2.5, width=8, height=6)


def result(**values) -> FrameResult:
    fields = dict(depth=None, relative=None, depth_intrinsics=None, xyz=None, colored=None)
    fields.update(values)
    return FrameResult(**fields)


def names(outputs) -> list[str]:
    return [name for name, _ in outputs]


def test_metric_frame_with_intrinsics_has_depth_info_and_points():
    depth = np.full((6, 8), 2.0, dtype=np.float32)
    xyz = np.zeros((6, 8, 3), dtype=np.float32)
    outputs = list(frame_outputs(result(depth=depth, depth_intrinsics=INTRINSICS, xyz=xyz)))
    assert names(outputs) == ["depth", "depth_info", "points"]
    fields = dict(outputs)
    assert fields["depth"]["encoding"] == "32FC1" and (fields["depth"]["height"], fields["depth"]["width"]) == (6, 8)
    assert list(fields["depth_info"]["k"]) == INTRINSICS.k_matrix()
    assert fields["points"]["point_step"] == 12  # the compact layout, the default


def test_no_intrinsics_no_depth_info_and_no_points_no_cloud():
    depth = np.ones((6, 8), dtype=np.float32)
    assert names(frame_outputs(result(depth=depth))) == ["depth"]
    assert names(frame_outputs(result(depth=depth, depth_intrinsics=INTRINSICS))) == ["depth", "depth_info"]


def test_relative_frame_and_preview():
    relative = np.ones((6, 8), dtype=np.float32)
    colored = np.zeros((6, 8, 3), dtype=np.uint8)
    outputs = names(frame_outputs(result(relative=relative, colored=colored)))
    assert outputs == ["relative", "colored"]


@pytest.mark.parametrize("layout, point_step, rgb_offset", [("depth_image_proc", 32, 16), ("compact", 16, 12)])
def test_the_results_colors_color_the_cloud(layout, point_step, rgb_offset):
    image = np.zeros((6, 8, 3), dtype=np.uint8)
    image[..., 0], image[..., 2] = 10, 200  # rgb: red 10, blue 200
    xyz = np.zeros((3, 4, 3), dtype=np.float32)
    depth = np.ones((6, 8), dtype=np.float32)
    frame = result(depth=depth, xyz=xyz, colors=cloud_colors(image, "rgb", 2))
    fields = dict(frame_outputs(frame, layout))["points"]
    assert fields["point_step"] == point_step and (fields["height"], fields["width"]) == (3, 4)
    raw = np.frombuffer(bytes(fields["data"]), dtype=np.uint8).reshape(3, 4, point_step)
    rgb = raw[..., rgb_offset:rgb_offset + 4]
    assert rgb[0, 0].tolist() == [200, 0, 10, 0]  # packed 0x00RRGGBB, little endian: B, G, R, 0


def test_only_the_wanted_outputs_are_built():
    """The node builds only what someone subscribes to: with nobody on points, no cloud bytes are made."""
    depth = np.ones((6, 8), dtype=np.float32)
    xyz = np.zeros((6, 8, 3), dtype=np.float32)
    frame = result(depth=depth, depth_intrinsics=INTRINSICS, xyz=xyz)
    assert names(frame_outputs(frame, wanted={"depth"})) == ["depth"]
    assert names(frame_outputs(frame, wanted={"points", "depth_info"})) == ["depth_info", "points"]
    assert names(frame_outputs(frame, wanted=())) == []


@pytest.mark.parametrize("params, expected", [
    ({}, ["depth", "depth_info", "points", "colored"]),
    ({"publish_cloud": False}, ["depth", "depth_info", "colored"]),
    ({"model_type": "relative"}, ["relative", "colored"]),
    ({"model_type": "relative", "relative_scale": 0.5}, ["relative", "depth", "depth_info", "points", "colored"]),
    ({"model_type": "relative", "relative_scale": 0.5, "publish_cloud": False},
     ["relative", "depth", "depth_info", "colored"]),
])
def test_expected_outputs_are_those_the_settings_can_publish(params, expected):
    """What the start-up line lists: a relative model without relative_scale has no depth/image, depth/camera_info
    or points; publish_cloud false has no points."""
    assert list(expected_outputs(NodeSettings.from_params(params))) == expected


def test_expected_outputs_cover_what_frame_outputs_yields():
    """Every output a relative frame without a conversion yields is among the expected ones (and no metric one)."""
    settings = NodeSettings.from_params({"model_type": "relative"})
    relative = np.ones((6, 8), dtype=np.float32)
    colored = np.zeros((6, 8, 3), dtype=np.uint8)
    yielded = names(frame_outputs(result(relative=relative, colored=colored)))
    assert set(yielded) <= set(expected_outputs(settings))


def test_every_output_has_its_message_type():
    assert set(OUTPUT_MESSAGES) == set(OUTPUT_NAMES)
    assert set(OUTPUT_MESSAGES.values()) == {"Image", "CameraInfo", "PointCloud2"}

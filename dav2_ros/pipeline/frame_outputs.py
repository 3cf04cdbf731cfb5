"""What one processed frame publishes, as message field dicts: shared by the node (rclpy messages) and
bag_to_depth (rosbags messages), so both decide the same way which outputs a frame has and build the same
bytes. ROS-free: the callers wrap each dict in their own message class with the input image's header."""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from typing import Any, Literal

from dav2_ros.conversions.image_codec import bgr_to_image_fields, depth_to_image_fields
from dav2_ros.conversions.buffers import ReusedByteArrays
from dav2_ros.geometry.intrinsics import camera_info_fields
from dav2_ros.conversions.pointcloud import CloudLayout, pointcloud_fields
from dav2_ros.pipeline.frames import FrameResult
from dav2_ros.pipeline.settings import NodeSettings

#: The outputs of a frame, named as the node's topics' last parts (depth/image -> "depth", ...).
OutputName = Literal["relative", "depth", "depth_info", "points", "colored"]
OUTPUT_NAMES: tuple[OutputName, ...] = ("relative", "depth", "depth_info", "points", "colored")


def expected_outputs(settings: NodeSettings) -> tuple[OutputName, ...]:
    """The outputs that can carry messages with these settings (in `frame_outputs`' order): what the node's
    start-up line lists. `depth_info` and `points` also need a CameraInfo, `colored` a subscriber."""
    names: list[OutputName] = []
    if settings.model_type == "relative":
        names.append("relative")
    if settings.publishes_metric_depth:
        names += ["depth", "depth_info"]
        if settings.publish_cloud:
            names.append("points")
    names.append("colored")
    return tuple(names)


#: The message type of each output: the node (rclpy) and bag_to_depth (rosbags) each build these from the fields.
OUTPUT_MESSAGES: dict[OutputName, str] = {"relative": "Image", "depth": "Image", "depth_info": "CameraInfo",
                                          "points": "PointCloud2", "colored": "Image"}


def frame_outputs(result: FrameResult, cloud_layout: CloudLayout = "compact",
                  wanted: Container[OutputName] = OUTPUT_NAMES,
                  buffers: Mapping[OutputName, ReusedByteArrays] | None = None,
                  ) -> Iterator[tuple[OutputName, dict[str, Any]]]:
    """(output name, message fields) for each output this frame has, in publishing order, built from the result
    alone: relative inverse depth (relative models), metric depth, the depth CameraInfo (needs intrinsics), the
    cloud in `cloud_layout` (needs points; colored when the result carries `colors`), the colorized preview (when
    it was computed).

    Only the outputs in `wanted` are built (the node: those with a subscriber); `buffers` gives an output's
    payload arrays to reuse (`ReusedByteArrays`), else each message gets fresh ones."""
    buffers = buffers or {}
    if result.relative is not None and "relative" in wanted:
        yield "relative", depth_to_image_fields(result.relative, buffers.get("relative"))
    if result.depth is not None:
        if "depth" in wanted:
            yield "depth", depth_to_image_fields(result.depth, buffers.get("depth"))
        if result.depth_intrinsics is not None and "depth_info" in wanted:
            yield "depth_info", camera_info_fields(result.depth_intrinsics)
    if result.xyz is not None and "points" in wanted:
        yield "points", pointcloud_fields(result.xyz, result.colors, cloud_layout, buffers.get("points"))
    if result.colored is not None and "colored" in wanted:
        yield "colored", bgr_to_image_fields(result.colored)

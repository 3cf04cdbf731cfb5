"""bag_to_depth's sparse depth topic: which bag topic feeds the metric-scale fit, and of which kind.

`--sparse-topic T` names it (a sensor_msgs/Image -> `sparse.input: depth`, a sensor_msgs/PointCloud2 ->
`points`); without it, a params file's `sparse.input: depth|points` reads `<camera ns>/sparse_depth` or
`<camera ns>/sparse_points`, the node's topic names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from dav2_ros.offline.bag_io import IMAGE_TYPE, BagError
from dav2_ros.offline.camera_topics import absolute, join_topic
from dav2_ros.pipeline.sparse_alignment import TOPICS

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.rosbag2 import Reader

POINTCLOUD2_TYPE = "sensor_msgs/msg/PointCloud2"
_KINDS = {IMAGE_TYPE: "depth", POINTCLOUD2_TYPE: "points"}


def select_sparse(reader: Reader, namespace: str, topic: Optional[str], kind: str) -> Optional[tuple[Connection, str]]:
    """(connection, "depth" | "points") of the sparse topic, or None when no sparse input is asked for.

    Raises:
        BagError: the named topic is missing or neither an Image nor a PointCloud2; `sparse.input` is set but the
            bag has no `<ns>/sparse_depth` / `<ns>/sparse_points`.
    """
    candidates = [c for c in reader.connections if c.msgtype in _KINDS]
    listing = ", ".join(f"{c.topic} ({c.msgtype.rsplit('/', 1)[-1]})" for c in candidates) or "none"
    if topic is None:
        if kind == "off":
            return None
        topic = join_topic(namespace, TOPICS[kind])
        hint = " (sparse.input is set; choose the topic with --sparse-topic)"
    else:
        hint = ""
    found = next((c for c in reader.connections if absolute(c.topic) == absolute(topic)), None)
    if found is None:
        raise BagError(f"sparse topic {topic} is not in bag {reader.path}{hint}; Image/PointCloud2 topics: {listing}")
    if found.msgtype not in _KINDS:
        raise BagError(f"sparse topic {topic} is {found.msgtype}; a sparse depth is a sensor_msgs/Image (32FC1 m or "
                       "16UC1 mm) or a sensor_msgs/PointCloud2 in the camera's optical frame")
    return found, _KINDS[found.msgtype]

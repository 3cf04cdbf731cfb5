"""Finding a bag's camera: the image topic (raw or compressed), its CameraInfo, and its namespace.

Rules (see `select_camera`): the image topic is the one given, or the only camera image topic in
the bag (depth images -- 16UC1/32FC1 encodings, or a `depth` path component -- do not count, and a
raw topic `X` wins over its own `X/compressed`). The CameraInfo is the one given, else
`<namespace>/camera_info`, else the only CameraInfo in the bag; the namespace is the image topic
minus its base name (and transport suffix): `/camera/image_raw/compressed` -> `/camera`.
Topic names compare with a leading slash added, so `a/b` and `/a/b` are the same topic.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from dav2_ros.offline.bag_io import (
    CAMERA_INFO_TYPE,
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    BagError,
    first_message,
)

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.rosbag2 import Reader
    from rosbags.typesys.store import Typestore

# Image encodings (lower case) that hold depth or disparity, not a picture the model can take.
DEPTH_ENCODINGS = frozenset({"16uc1", "16sc1", "32fc1", "32sc1", "64fc1", "mono16"})
# image_transport suffixes of a compressed image topic.
TRANSPORT_SUFFIXES = frozenset({"compressed", "compressedDepth", "theora", "zstd", "ffmpeg"})


@dataclasses.dataclass(frozen=True)
class CameraTopics:
    """The chosen camera: its image connection, CameraInfo connection (or None) and namespace."""

    image: Connection
    info: Connection | None
    namespace: str
    info_note: str  # why this CameraInfo (or why none), for the summary

    @property
    def compressed(self) -> bool:
        """Whether the image topic carries sensor_msgs/CompressedImage."""
        return self.image.msgtype == COMPRESSED_TYPE


def absolute(topic: str) -> str:
    """The topic name with a leading slash (ROS 1 conversions often drop it)."""
    return topic if topic.startswith("/") else "/" + topic


def join_topic(namespace: str, name: str) -> str:
    """`namespace` + `/` + relative `name`, with exactly one slash between them."""
    return namespace.rstrip("/") + "/" + name.lstrip("/")


def camera_namespace(image_topic: str, compressed: bool) -> str:
    """The namespace of a camera image topic: `/cam/image_raw` and `/cam/image_raw/compressed` -> `/cam`."""
    parts = absolute(image_topic).strip("/").split("/")
    if compressed and len(parts) > 1 and parts[-1] in TRANSPORT_SUFFIXES:
        parts = parts[:-1]
    return "/" + "/".join(parts[:-1])


def select_camera(
    reader: Reader,
    typestore: Typestore,
    image_topic: str | None = None,
    info_topic: str | None = None,
    output_namespace: str | None = None,
) -> CameraTopics:
    """Choose the camera image and CameraInfo topics of a bag (rules in the module docstring)."""
    image = _select_image(reader, typestore, image_topic)
    compressed = image.msgtype == COMPRESSED_TYPE
    namespace = camera_namespace(image.topic, compressed)
    info, note = _select_info(reader, namespace, info_topic)
    if output_namespace is not None:
        namespace = absolute(output_namespace).rstrip("/") or "/"
    return CameraTopics(image=image, info=info, namespace=namespace, info_note=note)


def _listing(connections: list[Connection]) -> str:
    """`topic (type), ...` for error messages."""
    return ", ".join(f"{c.topic} ({c.msgtype.rsplit('/', 1)[-1]})" for c in connections) or "none"


def _find(connections: list[Connection], topic: str) -> Connection | None:
    """The connection whose name equals `topic`, leading slash or not."""
    return next((c for c in connections if absolute(c.topic) == absolute(topic)), None)


def _is_camera_image(reader: Reader, typestore: Typestore, connection: Connection) -> bool:
    """Whether an image topic is a camera picture (not depth) judged by name and first message."""
    if "depth" in absolute(connection.topic).split("/"):
        return False
    if connection.msgtype == COMPRESSED_TYPE:
        return True
    msg = first_message(reader, connection, typestore)
    return msg is None or str(getattr(msg, "encoding", "")).lower() not in DEPTH_ENCODINGS


def _select_image(reader: Reader, typestore: Typestore, image_topic: str | None) -> Connection:
    """The image connection: the requested one, or the only camera image topic."""
    images = [c for c in reader.connections if c.msgtype in (IMAGE_TYPE, COMPRESSED_TYPE)]
    if image_topic is not None:
        chosen = _find(images, image_topic)
        if chosen is None:
            raise BagError(
                f"image topic {image_topic} is not in bag {reader.path} "
                f"(Image/CompressedImage topics: {_listing(images)})"
            )
        return chosen
    candidates = [c for c in images if _is_camera_image(reader, typestore, c) and c.msgcount > 0]
    raw_names = {absolute(c.topic) for c in candidates if c.msgtype == IMAGE_TYPE}
    # `X/compressed` is the same camera as raw `X`; the raw one is lossless, so it wins.
    candidates = [
        c
        for c in candidates
        if not (c.msgtype == COMPRESSED_TYPE and absolute(c.topic).rsplit("/", 1)[0] in raw_names)
    ]
    if len(candidates) == 1:
        return candidates[0]
    topics = _listing(list(reader.connections))
    if not candidates:
        raise BagError(
            f"no camera image topic (sensor_msgs/Image or CompressedImage) in bag {reader.path}; topics: {topics}"
        )
    raise BagError(
        f"several camera image topics in bag {reader.path}: {_listing(candidates)}; choose one with --image-topic"
    )


def _select_info(reader: Reader, namespace: str, info_topic: str | None) -> tuple[Connection | None, str]:
    """The CameraInfo connection and a note saying why it (or none) was chosen."""
    infos = [c for c in reader.connections if c.msgtype == CAMERA_INFO_TYPE]
    if info_topic is not None:
        chosen = _find(infos, info_topic)
        if chosen is None:
            raise BagError(
                f"CameraInfo topic {info_topic} is not in bag {reader.path} (CameraInfo topics: {_listing(infos)})"
            )
        return chosen, f"{chosen.topic} (--info-topic)"
    sibling = _find(infos, join_topic(namespace, "camera_info"))
    if sibling is not None:
        return sibling, f"{sibling.topic} (same namespace as the image)"
    if len(infos) == 1:
        return infos[0], f"{infos[0].topic} (the only CameraInfo topic)"
    if not infos:
        return None, "none (the bag has no CameraInfo topic: depth only, no point cloud)"
    raise BagError(
        f"no CameraInfo at {join_topic(namespace, 'camera_info')} and several elsewhere in bag {reader.path}: "
        f"{_listing(infos)}; choose one with --info-topic"
    )

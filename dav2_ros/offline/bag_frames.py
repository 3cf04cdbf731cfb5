"""Walking a bag in time order: camera frames paired with the latest CameraInfo, plus passthrough.

A frame gets the newest CameraInfo recorded at or before it (bag time), never an identical-stamp
match: real bags (fiducial_board_611_raw) have CameraInfo stamps that never equal the image's.
Messages sharing the frame's bag timestamp count as "before", whatever their order in the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dav2_ros.offline.bag_io import read_messages
from dav2_ros.pipeline.sparse_alignment import SparseBuffer

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.rosbag2 import Reader
    from rosbags.typesys.store import Typestore

    from dav2_ros.offline.camera_topics import CameraTopics


@dataclasses.dataclass(frozen=True)
class Frame:
    """One camera message (still serialized) and the CameraInfo in force when it was recorded."""

    index: int
    timestamp: int  # bag time, ns
    raw: bytes | memoryview
    camera_info: object | None


@dataclasses.dataclass(frozen=True)
class Passthrough:
    """An input message to copy to the output unchanged."""

    connection: Connection
    timestamp: int
    raw: bytes | memoryview


class FrameSource:
    """Iterates a bag's frames (and, with `copy_input`, every input message) in bag-time order."""

    def __init__(self, reader: Reader, camera: CameraTopics, typestore: Typestore, copy_input: bool,
                 sparse: Connection | None = None) -> None:
        """Read `camera.image` frames; `copy_input` also yields every message as `Passthrough`; the messages of
        `sparse` (a sparse depth topic) go into `sparse_buffer` as they are read (those recorded up to a frame)."""
        self._reader = reader
        self._camera = camera
        self._typestore = typestore
        self._copy_input = copy_input
        self._sparse = sparse
        self.sparse_buffer = SparseBuffer()
        self.undecodable_camera_infos = 0
        self.undecodable_sparse = 0

    @property
    def frame_count(self) -> int:
        """Number of image messages the bag says the camera topic holds."""
        return self._camera.image.msgcount

    def __iter__(self) -> Iterator[Frame | Passthrough]:
        """Yield items in bag-time order; frames wait until every message of their timestamp is seen."""
        image_id = self._camera.image.id
        info_id = self._camera.info.id if self._camera.info is not None else None
        sparse_id = self._sparse.id if self._sparse is not None else None
        wanted = [c for c in self._reader.connections if self._copy_input or c.id in (image_id, info_id, sparse_id)]
        latest_info: object | None = None
        pending: list[tuple[int, bytes | memoryview]] = []
        index = 0
        for connection, timestamp, raw in read_messages(self._reader, wanted):
            if pending and timestamp > pending[0][0]:
                for stamp, data in pending:
                    yield Frame(index, stamp, data, latest_info)
                    index += 1
                pending.clear()
            if self._copy_input:
                yield Passthrough(connection, timestamp, raw)
            if connection.id == image_id:
                pending.append((timestamp, raw))
            elif connection.id == info_id:
                latest_info = self._decode_info(raw) or latest_info
            elif connection.id == sparse_id:
                self._add_sparse(raw)
        for stamp, data in pending:
            yield Frame(index, stamp, data, latest_info)
            index += 1

    def _add_sparse(self, raw: bytes | memoryview) -> None:
        """Decode a sparse depth message into the buffer; a damaged one is counted and ignored."""
        assert self._sparse is not None
        try:
            self.sparse_buffer.add(self._typestore.deserialize_cdr(raw, self._sparse.msgtype))
        except Exception:  # noqa: BLE001  (any decode failure means "this message is damaged")
            self.undecodable_sparse += 1

    def _decode_info(self, raw: bytes | memoryview) -> object | None:
        """Decode a CameraInfo; a damaged one is counted and ignored (the previous one stays)."""
        try:
            return self._typestore.deserialize_cdr(raw, self._camera.info.msgtype)
        except Exception:  # noqa: BLE001  (any decode failure means "this message is damaged")
            self.undecodable_camera_infos += 1
            return None

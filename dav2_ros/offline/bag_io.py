"""Opening rosbag2 bags with `rosbags` and reading them without tracebacks on bad input.

Every failure a user can cause (missing path, not a bag, truncated or garbled file) comes
out as one `BagError` whose message names the bag and the cause.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING

from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.typesys.store import Typestore

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


class BagError(Exception):
    """A bag that cannot be used, with a one-line message that names the bag and the cause."""


@functools.lru_cache(maxsize=1)
def ros2_typestore() -> Typestore:
    """The ROS 2 message definitions used to decode and encode (sensor_msgs is identical Humble..Kilted)."""
    return get_typestore(Stores.ROS2_HUMBLE)


def open_reader(path: pathlib.Path) -> Reader:
    """Open a rosbag2 directory, `.mcap` or `.db3` file; raise `BagError` if it cannot be read."""
    if not path.exists():
        raise BagError(f"input bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    # rosbags raises many types on damaged files (ReaderError, UnicodeDecodeError, struct.error,
    # KeyError ...); at this boundary each one means "not a readable bag".
    except Exception as exc:  # noqa: BLE001
        raise BagError(f"cannot open bag {path}: {_describe(exc)}") from exc
    return reader


def read_messages(
    reader: Reader, connections: Collection[Connection]
) -> Iterator[tuple[Connection, int, bytes | memoryview]]:
    """Yield (connection, bag timestamp ns, raw CDR) in time order; a damaged bag raises `BagError`."""
    messages = reader.messages(connections=connections)
    while True:
        try:
            item = next(messages)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001  (a damaged chunk surfaces as any of several types)
            raise BagError(f"cannot read bag {reader.path}: {_describe(exc)}") from exc
        yield item


def first_message(reader: Reader, connection: Connection, typestore: Typestore) -> object | None:
    """Decode the first message of one connection (None if it has none or it does not decode)."""
    for conn, _, raw in read_messages(reader, [connection]):
        try:
            return typestore.deserialize_cdr(raw, conn.msgtype)
        except Exception:  # noqa: BLE001  (undecodable data: the caller treats it as unknown)
            return None
    return None


def _describe(exc: BaseException) -> str:
    """One line for an exception from the bag reader: its message, or its type if it has none."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, (FileNotFoundError, PermissionError)) or not text:
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if type(exc).__name__ == "ReaderError":
        return text
    return f"{type(exc).__name__}: {text} (truncated or corrupt file?)"

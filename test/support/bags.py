"""Rosbag2 folders without a running ROS graph, through `rosbags`: the one bag reader of the tests.

`read_bag` decodes a bag (or some of its topics) in bag-time order, `read_topics` groups them per topic
(rosbags objects, or rclpy messages), `looped` repeats messages N times with new stamps (a stream from a
single-frame bag), `write_bag` writes messages to a new MCAP/SQLite3 bag, and `rclpy_message` turns a decoded
message into the rclpy message with the same bytes.
"""

from __future__ import annotations

import dataclasses
import importlib
import pathlib
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
NS_PER_S = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class BagMessage:
    """One decoded message of a bag: topic, type, bag timestamp (ns) and the rosbags message object."""

    topic: str
    msgtype: str
    timestamp: int
    msg: object


def read_bag(path: pathlib.Path, topics: Iterable[str] | None = None) -> list[BagMessage]:
    """Every message of a bag (or of `topics`), decoded, in bag-time order."""
    wanted = None if topics is None else set(topics)
    with Reader(path) as reader:
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        if not connections:
            return []
        return [
            BagMessage(c.topic, c.msgtype, t, TYPESTORE.deserialize_cdr(raw, c.msgtype))
            for c, t, raw in reader.messages(connections=connections)
        ]


def stamp_ns(msg: object) -> int:
    """A message's header stamp in nanoseconds."""
    return int(msg.header.stamp.sec) * NS_PER_S + int(msg.header.stamp.nanosec)


def with_stamp(msg: object, stamp: int) -> object:
    """A copy of a rosbags message whose header stamp is `stamp` ns (frame_id kept)."""
    time_cls = type(msg.header.stamp)
    header = dataclasses.replace(msg.header, stamp=time_cls(sec=stamp // NS_PER_S, nanosec=stamp % NS_PER_S))
    return dataclasses.replace(msg, header=header)


def looped(messages: list[BagMessage], count: int, period_ns: int, start_ns: int | None = None) -> Iterator[BagMessage]:
    """The messages repeated `count` times, pass i shifted to `start + i * period`: a stream from one frame.

    Header stamps move with the bag timestamps (their offset within a pass is kept), so every pass
    has new, increasing stamps; messages without a header keep their content.
    """
    if not messages:
        return
    first = messages[0].timestamp
    start = first if start_ns is None else start_ns
    for i in range(count):
        shift = start + i * period_ns - first
        for m in messages:
            msg = with_stamp(m.msg, stamp_ns(m.msg) + shift) if hasattr(m.msg, "header") else m.msg
            yield BagMessage(m.topic, m.msgtype, m.timestamp + shift, msg)


def write_bag(path: pathlib.Path, messages: Iterable[BagMessage],
              storage: Literal["mcap", "sqlite3"] = "mcap") -> pathlib.Path:
    """Write messages (in the given order) to a new rosbag2 folder; returns `path`."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=8, storage_plugin=plugin) as writer:
        connections = {}
        for m in messages:
            if m.topic not in connections:
                connections[m.topic] = writer.add_connection(m.topic, m.msgtype, typestore=TYPESTORE)
            writer.write(connections[m.topic], m.timestamp, TYPESTORE.serialize_cdr(m.msg, m.msgtype))
    return path


def rclpy_message(m: BagMessage) -> Any:
    """The rclpy message with exactly the bytes rosbags would record for `m` (CDR round trip)."""
    from rclpy.serialization import deserialize_message

    package, _, name = m.msgtype.split("/")
    msg_type = getattr(importlib.import_module(f"{package}.msg"), name)
    return deserialize_message(bytes(TYPESTORE.serialize_cdr(m.msg, m.msgtype)), msg_type)


def read_topics(path: pathlib.Path, topics: Iterable[str] | None = None,
                as_rclpy: bool = False) -> dict[str, list[Any]]:
    """Topic -> its messages in bag-time order: the rosbags objects, or with `as_rclpy` the rclpy messages
    (deserialized from the recorded CDR bytes, so exactly what a live driver sent)."""
    by_topic: dict[str, list[Any]] = {}
    for m in read_bag(path, topics):
        by_topic.setdefault(m.topic, []).append(rclpy_message(m) if as_rclpy else m.msg)
    return by_topic


def raw_messages(bag: pathlib.Path) -> dict[str, list[tuple[int, bytes]]]:
    """Topic -> [(bag time, CDR bytes)] exactly as stored."""
    found: dict[str, list[tuple[int, bytes]]] = {}
    with Reader(bag) as reader:
        for connection, timestamp, raw in reader.messages():
            found.setdefault(connection.topic, []).append((timestamp, bytes(raw)))
    return found

"""The output rosbag2 of the offline tool: creation (with the overwrite rule), topics, writes, close.

Wraps `rosbags.rosbag2.Writer` so that topics are added on first use and a run that stops early
(Ctrl-C, a damaged input) still closes the bag into a valid, readable one.
"""

from __future__ import annotations

import pathlib
import shutil
from typing import TYPE_CHECKING, Literal

from rosbags.rosbag2 import StoragePlugin, Writer

from dav2_ros.offline.bag_io import BagError

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.typesys.store import Typestore

Storage = Literal["mcap", "sqlite3"]
_PLUGINS: dict[str, StoragePlugin] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# Files a rosbag2 folder holds; --overwrite deletes only folders made of these.
_BAG_SUFFIXES = (".mcap", ".db3", ".yaml", ".db3-shm", ".db3-wal", ".zstd")
BAG_VERSION = 8  # the rosbag2 metadata version of the bundled bags; read by Humble .. Kilted


def prepare_output(output: pathlib.Path, input_bag: pathlib.Path, overwrite: bool) -> None:
    """Make room for the output bag folder, or raise `BagError` saying why not."""
    out, src = output.resolve(), input_bag.resolve()
    if out == src or out in src.parents:
        raise BagError(f"output {output} would replace the input bag {input_bag}; choose another output path")
    if not output.exists() and not output.is_symlink():
        return
    if not overwrite:
        raise BagError(f"output {output} already exists; pass --overwrite to replace it")
    if not output.is_dir():
        raise BagError(f"output {output} exists and is a file, not a rosbag2 folder; not deleting it")
    strangers = [p.name for p in output.iterdir() if not p.name.endswith(_BAG_SUFFIXES)]
    if strangers:
        raise BagError(
            f"output {output} exists and holds files that are not part of a bag ({', '.join(sorted(strangers)[:5])}); "
            "not deleting it"
        )
    shutil.rmtree(output)


class OutputBag:
    """A rosbag2 being written: topics added on first use, CDR serialization, per-topic counts."""

    def __init__(self, path: pathlib.Path, storage: Storage, typestore: Typestore) -> None:
        """Create the bag folder at `path` (which must not exist; see `prepare_output`)."""
        self.path = path
        self.storage = storage
        self._typestore = typestore
        self._writer = Writer(path, version=BAG_VERSION, storage_plugin=_PLUGINS[storage])
        self._writer.open()
        self._connections: dict[str, Connection] = {}
        self.counts: dict[str, int] = {}

    def copy_topic(self, source: Connection) -> Connection | None:
        """Add an input topic with its own definition; None if neither it nor the typestore has one."""
        msgdef, digest = source.msgdef.data, source.digest
        if not msgdef or not digest:
            if source.msgtype not in self._typestore.fielddefs:
                return None
            msgdef, _ = self._typestore.generate_msgdef(source.msgtype, ros_version=2)
            digest = self._typestore.hash_rihs01(source.msgtype)
        connection = self._writer.add_connection(
            source.topic,
            source.msgtype,
            msgdef=msgdef,
            rihs01=digest,
            offered_qos_profiles=getattr(source.ext, "offered_qos_profiles", ()),
        )
        self._connections[source.topic] = connection
        self.counts.setdefault(source.topic, 0)
        return connection

    def write_raw(self, connection: Connection, timestamp: int, data: bytes | memoryview) -> None:
        """Write already-serialized CDR on a connection from `copy_topic`."""
        self._writer.write(connection, timestamp, data)
        self.counts[connection.topic] += 1

    def write(self, topic: str, msgtype: str, timestamp: int, message: object) -> None:
        """Serialize a rosbags message object and write it, adding the topic on first use."""
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=self._typestore)
            self._connections[topic] = connection
            self.counts[topic] = 0
        self._writer.write(connection, timestamp, self._typestore.serialize_cdr(message, msgtype))
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the storage file and write metadata.yaml, leaving a complete, readable bag."""
        self._writer.close()

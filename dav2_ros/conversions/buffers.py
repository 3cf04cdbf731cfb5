"""Zero-copy byte views of a message's ``data`` field and the byte containers the encoders hand out.

``data`` arrives as ``bytes``/``array('B')`` (rclpy), ``np.ndarray`` of uint8 (rosbags) or, from
hand-built messages, a list of ints. Outgoing ``data`` is an ``array('B')``: rclpy's setters take it
without the per-element check they run on any other sequence (seconds for a 4-MB image on
Humble/Jazzy), and ``np.frombuffer(data, np.uint8)`` turns it into the ndarray rosbags wants
without a copy.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Hashable
from typing import Any

import numpy as np

from dav2_ros.errors import InputRejected


def byte_view(data: Any, field: str = "data") -> np.ndarray:
    """A 1-D uint8 array over ``data``, sharing its memory whenever the object exposes a byte buffer.

    Raises:
        InputRejected: reason ``bad_data`` for anything that is not a sequence of bytes (text,
            floats, values outside 0..255, multi-byte buffers such as ``array('d')``).
    """
    if isinstance(data, np.ndarray):
        if data.dtype == np.uint8:
            return data.reshape(-1)
        if data.dtype.kind in "iu" and data.size and (data.min() < 0 or data.max() > 255):
            raise InputRejected("bad_data", f"{field} holds values outside 0..255")
        if data.dtype.kind in "iu":
            return data.astype(np.uint8).reshape(-1)
        raise InputRejected("bad_data", f"{field} is a {data.dtype} array, expected bytes")
    if isinstance(data, str):
        raise InputRejected("bad_data", f"{field} is text, expected bytes")
    try:
        view = memoryview(data)
    except TypeError:
        return _bytes_from_sequence(data, field)
    if view.itemsize != 1:
        raise InputRejected("bad_data", f"{field} is a buffer of {view.itemsize}-byte items, expected bytes")
    try:
        return np.frombuffer(view, dtype=np.uint8)
    except ValueError:  # a non-contiguous memoryview: copy it once
        return np.array(view, dtype=np.uint8).reshape(-1)


def _bytes_from_sequence(data: Any, field: str) -> np.ndarray:
    """A copy of a plain sequence of ints (e.g. a list) as uint8; InputRejected(bad_data) otherwise."""
    try:
        values = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise InputRejected("bad_data", f"{field} is not a sequence of bytes: {exc}") from None
    if values.ndim != 1 or (values.size and values.dtype.kind not in "iu"):
        raise InputRejected("bad_data", f"{field} is not a flat sequence of integers (got {values.dtype})")
    if values.size and (values.min() < 0 or values.max() > 255):
        raise InputRejected("bad_data", f"{field} holds values outside 0..255")
    return values.astype(np.uint8)


def to_byte_array(values: np.ndarray) -> array.array:
    """The bytes of ``values`` (C order) as an ``array('B')``: one copy, the form rclpy accepts fastest."""
    contiguous = np.ascontiguousarray(values)
    out = array.array("B")
    out.frombytes(memoryview(contiguous).cast("B"))
    return out


def zeroed_byte_array(size: int) -> array.array:
    """An ``array('B')`` of ``size`` zero bytes, to be filled in place through ``np.frombuffer``."""
    return array.array("B", b"\0") * size if size else array.array("B")


class ReusedByteArrays:
    """Hands out ``array('B')`` message payloads again instead of allocating (and zero-filling) ~15-30 MB a frame.

    An array is handed out again only when nothing but this pool holds it any more (its reference count says so):
    a message that still holds one -- queued somewhere, kept by a caller -- keeps its bytes, and the pool allocates
    another one instead. rclpy's ``publish`` copies the payload into the C message before it returns, so in the
    node the array is free again once the message object is gone. One pool per output and thread.

    Args:
        slots: how many arrays to keep (2: one being filled while the last one may still be in use).
    """

    def __init__(self, slots: int = 2) -> None:
        self._slots: list[tuple[Hashable, array.array]] = []
        self._max_slots = slots
        self.allocations = 0  # arrays made (for tests and benchmarks)

    def take(self, size: int, key: Hashable = None) -> array.array:
        """An ``array('B')`` of ``size`` bytes for contents of kind ``key`` (e.g. a cloud layout): a kept one that
        nobody else holds and that last held the same kind (its untouched bytes -- padding -- are as that kind
        left them), else a new zeroed one (which replaces the oldest kept one)."""
        for index, (kept_key, data) in enumerate(self._slots):
            # 3 references: the slot's tuple, `data` here, getrefcount's argument
            if kept_key == key and len(data) == size and sys.getrefcount(data) <= 3:
                self._slots.append(self._slots.pop(index))  # most recently used last
                return data
        data = zeroed_byte_array(size)
        self.allocations += 1
        self._slots.append((key, data))
        if len(self._slots) > self._max_slots:
            self._slots.pop(0)
        return data

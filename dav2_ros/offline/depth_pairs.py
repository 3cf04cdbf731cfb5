"""Pairing predicted depth frames with ground-truth depth frames from one or two bags.

Frames pair by header stamp: each prediction takes the ground-truth frame with the nearest stamp
within `max_dt` (bag_to_depth copies the camera stamp, and registered RGB-D bags stamp depth within
a few ms of color). Reading is one pass in bag-time order with a bounded buffer, so long bags do
not have to fit in memory: frames more than `WINDOW_NS` of bag time apart are never compared.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from dav2_ros.errors import InputRejected
from dav2_ros.conversions.image_codec import depth_msg_to_array
from dav2_ros.offline.bag_io import BagError, read_messages

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.rosbag2 import Reader
    from rosbags.typesys.store import Typestore

WINDOW_NS = 2_000_000_000  # bag-time distance beyond which a prediction and a GT frame never pair


@dataclasses.dataclass(frozen=True)
class DepthPair:
    """A predicted depth frame and its ground truth, both float32 HxW meters."""

    stamp_ns: int  # the prediction's header stamp
    gt_stamp_ns: int
    pred: np.ndarray
    gt: np.ndarray


@dataclasses.dataclass
class PairingStats:
    """Frames that could not be compared, by reason."""

    unmatched_predictions: int = 0
    unreadable: collections.Counter = dataclasses.field(default_factory=collections.Counter)


def _stamp_ns(msg: object) -> int:
    """A message's header stamp in nanoseconds."""
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _decoded(
    reader: Reader, connection: Connection, typestore: Typestore, role: str, stats: PairingStats
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(bag time, header stamp, depth in m) of every readable depth image on one connection."""
    for conn, timestamp, raw in read_messages(reader, [connection]):
        try:
            msg = typestore.deserialize_cdr(raw, conn.msgtype)
            depth = depth_msg_to_array(msg)
        except InputRejected as exc:
            stats.unreadable[f"{role}: {exc.reason}"] += 1
            continue
        except Exception:  # noqa: BLE001  (a damaged message)
            stats.unreadable[f"{role}: message does not decode"] += 1
            continue
        yield timestamp, _stamp_ns(msg), depth


def pair_depth_frames(
    pred_source: tuple[Reader, Connection],
    gt_source: tuple[Reader, Connection],
    typestore: Typestore,
    max_dt_ns: int,
    stats: PairingStats,
) -> Iterator[DepthPair]:
    """Yield each prediction with its nearest-stamp ground truth (within `max_dt_ns`), in bag-time order."""
    preds = ((t, 0, s, d) for t, s, d in _decoded(*pred_source, typestore, "prediction", stats))
    gts = ((t, 1, s, d) for t, s, d in _decoded(*gt_source, typestore, "ground truth", stats))
    gt_buffer: collections.deque[tuple[int, int, np.ndarray]] = collections.deque()
    pending: collections.deque[tuple[int, int, np.ndarray]] = collections.deque()

    def resolve(until_ns: int | None) -> Iterator[DepthPair]:
        """Pair the pending predictions no later ground truth can still match."""
        while pending and (until_ns is None or pending[0][0] + WINDOW_NS < until_ns):
            _, stamp, pred = pending.popleft()
            best = min(gt_buffer, key=lambda g: abs(g[1] - stamp), default=None)
            if best is None or abs(best[1] - stamp) > max_dt_ns:
                stats.unmatched_predictions += 1
                continue
            yield DepthPair(stamp, best[1], pred, best[2])

    for bag_time, kind, stamp, depth in heapq.merge(preds, gts, key=lambda item: (item[0], item[1])):
        (pending if kind == 0 else gt_buffer).append((bag_time, stamp, depth))
        yield from resolve(bag_time)
        while gt_buffer and gt_buffer[0][0] + 2 * WINDOW_NS < bag_time:
            gt_buffer.popleft()
    yield from resolve(None)


def check_same_shape(pair: DepthPair) -> None:
    """Raise `BagError` when a prediction is not the ground truth's size (it must be registered to it)."""
    if pair.pred.shape != pair.gt.shape:
        raise BagError(
            f"prediction is {pair.pred.shape[1]}x{pair.pred.shape[0]} but ground truth is "
            f"{pair.gt.shape[1]}x{pair.gt.shape[0]}; depth_eval needs depth registered to the same image"
        )

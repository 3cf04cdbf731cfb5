"""Keeps inference off the executor: a one-frame slot that the subscription callbacks fill (a newer
frame replaces an unprocessed older one, which is counted as dropped) and a thread that drains it.

No rclpy here: the worker calls a plain handler, so its dropping and shutdown are testable alone.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, Optional, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A queue of size one that keeps the newest item: `put` never blocks, `take` waits."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Optional[T] = None
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Store `item`; returns True when it replaced an item nobody took (that one is dropped)."""
        with self._condition:
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self._condition.notify()
            return replaced

    def take(self, timeout: Optional[float] = None) -> Optional[T]:
        """The newest item (removing it), or None after `timeout` seconds or once closed."""
        with self._condition:
            if self._item is None and not self._closed:
                self._condition.wait(timeout)
            item, self._item = self._item, None
            return None if self._closed else item

    def close(self) -> None:
        """Wake any waiting `take` and make every later one return None."""
        with self._condition:
            self._closed = True
            self._item = None
            self._condition.notify_all()


class FrameWorker(Generic[T]):
    """A thread that hands the newest frame of a `LatestSlot` to `handle`, one at a time.

    `handle` must not raise; anything that escapes it goes to `on_error` and the loop goes on,
    so one bad frame never stops the node.
    """

    def __init__(self, handle: Callable[[T], None], on_error: Callable[[BaseException], None],
                 name: str = "dav2_frame_worker") -> None:
        self.slot: LatestSlot[T] = LatestSlot()
        self._handle = handle
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.busy = threading.Event()

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread.start()

    def submit(self, frame: T) -> bool:
        """Offer a frame; True when it displaced an unprocessed one (counted in `slot.dropped`)."""
        return self.slot.put(frame)

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the thread to finish after the current frame and wait for it; True once it has ended."""
        self._stop.set()
        self.slot.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """True once `stop` was called (the handler may use it to skip publishing)."""
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            frame = self.slot.take(timeout=0.5)
            if frame is None:
                continue
            self.busy.set()
            try:
                self._handle(frame)
            except BaseException as error:  # noqa: BLE001 -- reported, the loop must survive
                if not self._stop.is_set():
                    self._on_error(error)
            finally:
                self.busy.clear()

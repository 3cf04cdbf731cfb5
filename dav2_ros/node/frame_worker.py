"""Keeps inference off the executor: a slot holding one frame per camera that the subscription callbacks fill
(a newer frame replaces an unprocessed older one of the same camera, which is counted as dropped) and a thread
that drains it.

No rclpy here: the worker calls a plain handler, so its dropping and shutdown are testable alone.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import Future
from typing import Any, Callable, Generic, Hashable, Optional, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A queue that keeps the newest item per key (one key: a queue of size one); `put` never blocks, `take`
    and `take_all` wait. Keys are the cameras of a multi-camera node: each keeps its own newest frame."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._items: dict[Hashable, T] = {}  # insertion order = the order the keys became pending
        self._closed = False
        self._woken = False
        self.dropped = 0
        self.dropped_by_key: dict[Hashable, int] = {}

    def put(self, item: T, key: Hashable = None) -> bool:
        """Store `item` under `key`; returns True when it replaced an item nobody took (that one is dropped)."""
        with self._condition:
            replaced = key in self._items
            if replaced:
                self.dropped += 1
                self.dropped_by_key[key] = self.dropped_by_key.get(key, 0) + 1
            self._items[key] = item
            self._condition.notify()
            return replaced

    def take(self, timeout: Optional[float] = None) -> Optional[T]:
        """The oldest pending key's newest item (removing it), or None after `timeout` seconds or once closed."""
        with self._condition:
            if not self._items and not self._closed:
                self._condition.wait(timeout)
            if self._closed or not self._items:
                return None
            key = next(iter(self._items))
            return self._items.pop(key)

    def take_all(self, timeout: Optional[float] = None) -> list[T]:
        """Every key's newest item (removing them), oldest key first; [] after `timeout` seconds, once closed, or
        when `wake` was called since the last take."""
        with self._condition:
            if not self._items and not self._closed and not self._woken:
                self._condition.wait(timeout)
            self._woken = False
            items, self._items = list(self._items.values()), {}
            return [] if self._closed else items

    def wake(self) -> None:
        """Make the current (or next) waiting `take_all` return, with whatever is there (possibly nothing)."""
        with self._condition:
            self._woken = True
            self._condition.notify_all()

    def close(self) -> None:
        """Wake any waiting `take` and make every later one return None."""
        with self._condition:
            self._closed = True
            self._items = {}
            self._condition.notify_all()


class FrameWorker(Generic[T]):
    """A thread that hands the newest frames of a `LatestSlot` to a handler, one batch at a time.

    `handle(frame)` gets one frame at a time; with `handle_batch(frames)` instead, every frame waiting at that
    moment (the newest of each key) comes in one call. Handlers must not raise; anything that escapes goes to
    `on_error` (called after the except block has exited) and the loop goes on, so one bad frame never stops the
    node; if `on_error` raises as well, one line goes to stderr and the loop still goes on. `call(function)` runs a
    function on the same thread between two batches (the start-up warm-up: what the frames use per thread is made
    there).
    """

    def __init__(self, handle: Optional[Callable[[T], None]], on_error: Callable[[BaseException], None],
                 name: str = "dav2_frame_worker", handle_batch: Optional[Callable[[list[T]], None]] = None) -> None:
        if (handle is None) == (handle_batch is None):
            raise ValueError("give exactly one of handle and handle_batch")
        self.slot: LatestSlot[T] = LatestSlot()
        self._handle = handle
        self._handle_batch = handle_batch
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.busy = threading.Event()
        self._calls: list[tuple[Callable[[], Any], Future]] = []
        self._calls_lock = threading.Lock()

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread.start()

    def submit(self, frame: T, key: Hashable = None) -> bool:
        """Offer a frame (of camera `key`); True when it displaced an unprocessed one (counted in `slot.dropped`)."""
        return self.slot.put(frame, key)

    def call(self, function: Callable[[], Any], timeout: Optional[float] = None) -> Any:
        """Run `function` on the worker thread between two batches; its result, or its exception raised here.

        For what must happen on the thread that runs the frames: cuBLAS/cuDNN handles are made per thread on its
        first call, and a CUDA graph captured in "global" mode forbids CUDA calls from other threads meanwhile.

        Raises:
            RuntimeError: the worker stopped (or was never started) before running it.
            TimeoutError: it did not finish within `timeout` seconds.
        """
        return self.submit_call(function).result(timeout)

    def submit_call(self, function: Callable[[], Any]) -> Future:
        """`call` without waiting: the future of its result (a start-up waits on it while watching for Ctrl-C).

        Raises:
            RuntimeError: the worker is not running.
        """
        if not self._thread.is_alive() or self._stop.is_set():
            raise RuntimeError("the frame worker is not running")
        future: Future = Future()
        with self._calls_lock:
            self._calls.append((function, future))
        self.slot.wake()
        return future

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the thread to finish after the current frame and wait for it; True once it has ended. Calls it has
        not started fail with RuntimeError."""
        self._stop.set()
        self.slot.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._fail_calls()
        return not self._thread.is_alive()

    def _run_calls(self) -> None:
        """Run the queued `call`s, in order, handing each its result or exception."""
        while True:
            with self._calls_lock:
                if not self._calls:
                    return
                function, future = self._calls.pop(0)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function())
            except BaseException as error:  # noqa: BLE001 -- handed to the caller
                future.set_exception(error)

    def _fail_calls(self) -> None:
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for _, future in calls:
            if future.set_running_or_notify_cancel():
                future.set_exception(RuntimeError("the frame worker stopped before running this call"))

    @property
    def stopping(self) -> bool:
        """True once `stop` was called (the handler may use it to skip publishing)."""
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._run_calls()
            frames = self.slot.take_all(timeout=0.5)
            if not frames:
                continue
            self.busy.set()
            try:
                if self._handle_batch is not None:
                    self._call(self._handle_batch, frames)
                else:
                    for frame in frames:
                        self._call(self._handle, frame)
            finally:
                self.busy.clear()

    def _call(self, handler: Callable, argument: object) -> None:
        failure: Optional[BaseException] = None
        try:
            handler(argument)
        except BaseException as error:  # noqa: BLE001 -- reported, the loop must survive
            failure = error
        # Reported after the except block has exited, so the handler's traceback (and what its frames hold, e.g.
        # tensors) is not pinned while on_error runs.
        if failure is not None and not self._stop.is_set():
            self._report(failure)

    def _report(self, failure: BaseException) -> None:
        """`on_error(failure)`; if that raises too, one line on stderr, and the loop goes on."""
        try:
            self._on_error(failure)
        except BaseException as error:  # noqa: BLE001 -- the loop must survive its own reporter
            try:
                sys.stderr.write(f"[ERROR] [{self._thread.name}]: reporting {type(failure).__name__} failed "
                                 f"with {type(error).__name__}\n")
            except BaseException:  # noqa: BLE001
                pass

"""The latest-frame slot and the worker thread: newest frame only, drops counted, errors survived,
clean stop. Plain threads, no ROS."""

import threading
import time

from dav2_ros.node.frame_worker import FrameWorker, LatestSlot
from node_harness import wait_until


def test_slot_keeps_only_the_newest_item_and_counts_the_dropped():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.put(3) is True
    assert slot.dropped == 2
    assert slot.take(timeout=0.1) == 3
    assert slot.take(timeout=0.05) is None  # empty again
    assert slot.dropped == 2


def test_take_wakes_on_put_and_on_close():
    slot: LatestSlot[str] = LatestSlot()
    got = []
    taker = threading.Thread(target=lambda: got.append(slot.take(timeout=10.0)))
    taker.start()
    time.sleep(0.1)
    slot.put("frame")
    taker.join(timeout=2.0)
    assert got == ["frame"]

    closer = threading.Thread(target=lambda: got.append(slot.take(timeout=10.0)))
    start = time.monotonic()
    closer.start()
    slot.close()
    closer.join(timeout=2.0)
    assert got == ["frame", None] and time.monotonic() - start < 2.0
    assert slot.put("late") is False and slot.take(timeout=0.01) is None


def test_slow_handler_sees_the_newest_frames_and_older_ones_are_dropped():
    handled: list[int] = []
    release = threading.Event()

    def handle(frame: int) -> None:
        release.wait(5.0)
        handled.append(frame)

    worker: FrameWorker[int] = FrameWorker(handle, on_error=lambda error: None)
    worker.start()
    try:
        worker.submit(0)
        wait_until(worker.busy.is_set, 5.0, "the worker to pick frame 0")
        for frame in range(1, 30):  # arrive while frame 0 is in flight
            worker.submit(frame)
        release.set()
        wait_until(lambda: handled[-1:] == [29], 5.0, "the newest frame to be handled")
        assert handled == [0, 29]
        assert worker.slot.dropped == 28
    finally:
        assert worker.stop(timeout=5.0)


def test_an_exception_in_one_frame_is_reported_and_the_loop_goes_on():
    errors: list[BaseException] = []
    handled: list[int] = []

    def handle(frame: int) -> None:
        if frame == 1:
            raise ValueError("bad frame")
        handled.append(frame)

    worker: FrameWorker[int] = FrameWorker(handle, on_error=errors.append)
    worker.start()
    try:
        worker.submit(1)
        wait_until(lambda: errors, 5.0, "the error report")
        worker.submit(2)
        wait_until(lambda: handled == [2], 5.0, "the next frame")
        assert isinstance(errors[0], ValueError) and str(errors[0]) == "bad frame"
    finally:
        assert worker.stop(timeout=5.0)


def test_on_error_runs_after_the_handler_block_and_may_itself_fail():
    """on_error sees the error after the worker's except block has exited (nothing is being handled, so the
    traceback does not pin the failed frame), and an on_error that raises does not stop the loop."""
    import sys

    seen: list[tuple[BaseException, object]] = []
    handled: list[int] = []

    def handle(frame: int) -> None:
        if frame < 3:
            raise ValueError(f"bad frame {frame}")
        handled.append(frame)

    def on_error(error: BaseException) -> None:
        seen.append((error, sys.exc_info()[1]))
        raise RuntimeError("the reporter failed too")

    worker: FrameWorker[int] = FrameWorker(handle, on_error=on_error)
    worker.start()
    try:
        for frame in (1, 2, 3):
            worker.submit(frame)
            wait_until(lambda f=frame: len(seen) >= f or handled, 5.0, f"frame {frame} handled or reported")
        wait_until(lambda: handled == [3], 5.0, "the frame after two failed reports")
        assert [str(error) for error, _ in seen] == ["bad frame 1", "bad frame 2"]
        assert [active for _, active in seen] == [None, None]
    finally:
        assert worker.stop(timeout=5.0)


def test_stop_waits_for_the_frame_in_flight_and_ends_the_thread():
    finished = threading.Event()

    def handle(frame: int) -> None:
        time.sleep(0.3)
        finished.set()

    worker: FrameWorker[int] = FrameWorker(handle, on_error=lambda error: None)
    worker.start()
    worker.submit(1)
    wait_until(worker.busy.is_set, 5.0, "the worker to start the frame")
    assert worker.stop(timeout=5.0) is True
    assert finished.is_set()
    assert worker.stopping
    assert not any(t.name == "dav2_frame_worker" and t.is_alive() for t in threading.enumerate())


def test_call_runs_on_the_worker_thread_between_batches_and_hands_back_result_or_error():
    events: list[str] = []
    in_batch = threading.Event()
    release = threading.Event()

    def handle(frame: int) -> None:
        events.append(f"frame {frame} on {threading.current_thread().name}")
        if frame == 1:
            in_batch.set()
            release.wait(5.0)

    worker: FrameWorker[int] = FrameWorker(handle, on_error=lambda error: None)
    worker.start()
    try:
        assert worker.call(lambda: threading.current_thread().name, timeout=5.0) == "dav2_frame_worker"
        worker.submit(1)
        wait_until(in_batch.is_set, 5.0, "frame 1 in the handler")
        worker.submit(2)  # waits behind frame 1, as the call below does
        result: list = []
        caller = threading.Thread(target=lambda: result.append(worker.call(lambda: events.append("call") or 7, 5.0)))
        caller.start()
        time.sleep(0.2)
        assert events == ["frame 1 on dav2_frame_worker"], "the call ran during a batch"
        release.set()
        caller.join(5.0)
        wait_until(lambda: len(events) == 3, 5.0, "frame 2")
        assert events[1:] == ["call", "frame 2 on dav2_frame_worker"] and result == [7]

        def fail() -> None:
            raise ValueError("warm-up failed")
        try:
            worker.call(fail, timeout=5.0)
        except ValueError as error:
            assert str(error) == "warm-up failed"
        else:
            raise AssertionError("the call's exception was not raised to the caller")
    finally:
        assert worker.stop(timeout=5.0)
    try:
        worker.call(lambda: None, timeout=1.0)
    except RuntimeError as error:
        assert "not running" in str(error)
    else:
        raise AssertionError("a call on a stopped worker did not fail")

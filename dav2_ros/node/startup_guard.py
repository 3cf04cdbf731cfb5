"""Lets Ctrl-C / SIGTERM stop a node that is still starting (loading, converting, compiling, warming up) or, as a
managed node, configuring.

How rclpy reports the request depends on the moment (seen with rclpy 9, Kilted): before an executor exists its
signal handler shuts the context down and raises nothing in Python, so a start-up that never looks runs on to its end
and then fails on the dead context (a traceback half a minute after Ctrl-C); once an executor exists (a managed node's
configure runs in one), SIGINT becomes a KeyboardInterrupt in the main thread -- raised only when a long C call
returns -- while SIGTERM still shuts the context down. `StartupGuard` sees all three: the context's state, Python's
signal wakeup fd (written the moment SIGINT arrives, from any state of the main thread) and KeyboardInterrupt.

It is looked at between the long steps (`check`, `wait`), which raise `StartupCancelled`; that unwinds the start-up
to `spin_node` (exit 0, one line). A step that cannot give way -- one call into a compiler or a checkpoint reader --
is not waited for: `GRACE_S` after the request a watcher thread says so and ends the process with code 0 (nothing
has been published yet, so nothing is lost).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, TimeoutError as FutureTimeout
from typing import Any

from dav2_ros.node import entry
from dav2_ros.node.entry import say

# Seconds a start-up step may run on after a shutdown request before the process is ended without it.
GRACE_S = 1.5
_POLL_S = 0.05


class StartupCancelled(BaseException):
    """A shutdown request (Ctrl-C, SIGTERM) arrived while the node was starting or configuring.

    A BaseException (as KeyboardInterrupt): the frame path's and rclpy's lifecycle handlers catch Exception, and
    this must pass them to reach `spin_node`."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


class StartupGuard:
    """Watches `context` while the node starts (`busy`); `check` and `wait` raise `StartupCancelled` once it is down.

    Args:
        is_ok: the context's `ok` (False once rclpy's signal handler shut it down).
    """

    def __init__(self, is_ok: Callable[[], bool]) -> None:
        self._is_ok = is_ok
        self._step = ""
        self._done = threading.Event()
        self._signalled = False

    @property
    def requested(self) -> bool:
        """A shutdown was requested: the context is down, or a SIGINT arrived while `busy`."""
        return self._signalled or not self._is_ok()

    @property
    def current_step(self) -> str:
        """The step now running, as the exit line names it."""
        return self._step or "starting"

    def step(self, what: str) -> None:
        """Name the step now running (for the exit line), after checking that no shutdown was requested."""
        self.check()
        self._step = what

    def check(self) -> None:
        """Raise `StartupCancelled` when a shutdown was requested."""
        if self.requested:
            raise StartupCancelled(self.current_step)

    def wait(self, future: Future) -> Any:
        """`future.result()`, raising `StartupCancelled` as soon as a shutdown is requested meanwhile."""
        while True:
            self.check()
            try:
                return future.result(_POLL_S)
            except FutureTimeout:
                pass

    @contextlib.contextmanager
    def busy(self, what: str) -> Iterator[StartupGuard]:
        """While the block runs, a watcher thread ends the process `GRACE_S` after a shutdown request unless the
        block has ended by then (it raises `StartupCancelled` at its next `check`)."""
        self._step = what
        self._done.clear()
        entry.quiet_during_startup(True)
        wakeup, previous_fd = self._signal_pipe()
        watcher = threading.Thread(target=self._watch, args=(wakeup,), name="dav2_startup_guard", daemon=True)
        watcher.start()
        try:
            yield self
        except KeyboardInterrupt:
            self._signalled = True
            raise StartupCancelled(self.current_step) from None
        finally:
            entry.quiet_during_startup(False)
            self._done.set()
            watcher.join()
            if wakeup is not None:
                signal.set_wakeup_fd(previous_fd)
                for fd in wakeup:
                    os.close(fd)

    @staticmethod
    def _signal_pipe() -> tuple[tuple[int, int] | None, int]:
        """A pipe that Python's signal handler writes to on SIGINT (`signal.set_wakeup_fd`; main thread only, else
        None) and the wakeup fd it replaces."""
        if threading.current_thread() is not threading.main_thread():
            return None, -1
        read, write = os.pipe()
        os.set_blocking(write, False)
        return (read, write), signal.set_wakeup_fd(write, warn_on_full_buffer=False)

    def _watch(self, wakeup: tuple[int, int] | None) -> None:
        while not self._done.is_set():
            if wakeup is not None:
                if select.select([wakeup[0]], [], [], _POLL_S)[0]:
                    numbers = os.read(wakeup[0], 64)  # one byte per signal Python handled: its number
                    self._signalled |= any(n in (signal.SIGINT, signal.SIGTERM) for n in numbers)
            else:
                self._done.wait(_POLL_S)
            if self.requested and not self._done.is_set():
                if self._done.wait(GRACE_S):
                    return
                say("INFO", f"shutdown requested while {self._step}: exiting without waiting for that step to end "
                            "(nothing was published yet)")
                os._exit(0)


class GuardedLogger:
    """The node's logger for the start-up steps: once a shutdown was requested its lines go to stderr (`say`), since
    the ROS logger would fail to publish them on the dead context ("Failed to publish log message to rosout").

    One method per severity, each calling its own: rclpy refuses two severities from one call site."""

    def __init__(self, logger: Any, guard: StartupGuard) -> None:
        self._logger = logger
        self._guard = guard

    def _said(self, severity: str, message: str) -> bool:
        if self._guard.requested:
            say(severity, str(message))
            return True
        return False

    def debug(self, message: str, **kwargs: Any) -> Any:
        return self._said("DEBUG", message) or self._logger.debug(message, **kwargs)

    def info(self, message: str, **kwargs: Any) -> Any:
        return self._said("INFO", message) or self._logger.info(message, **kwargs)

    def warning(self, message: str, **kwargs: Any) -> Any:
        return self._said("WARN", message) or self._logger.warning(message, **kwargs)

    warn = warning

    def error(self, message: str, **kwargs: Any) -> Any:
        return self._said("ERROR", message) or self._logger.error(message, **kwargs)

    def fatal(self, message: str, **kwargs: Any) -> Any:
        return self._said("FATAL", message) or self._logger.fatal(message, **kwargs)

"""Warnings and errors throttled per reason: the first of each kind at once, then at most one per period, each
saying how many were suppressed since the last one. Logging here never raises."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Optional


class ThrottledLog:
    """Throttles warnings and errors by a reason key (rclpy's `throttle_duration_sec` throttles per call site,
    which would let one noisy reason hide another).

    `warn` and `error` log from two different lines on purpose: rclpy remembers the severity of each call site
    and raises `ValueError: Logger severity cannot be changed between calls.` when one line logs at two
    severities. Neither method raises: these are the node's error paths, and an exception from one of them
    would cost frames (and count them twice); if the logger itself fails, the line goes to stderr.
    """

    def __init__(self, logger: Any, period_s: float) -> None:
        self._logger = logger
        self._period_s = period_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, reason: str, message: str) -> bool:
        """Log `message` as a warning unless `reason` was logged less than a period ago; True when logged."""
        text = self._admit(reason, message)
        if text is None:
            return False
        try:
            self._logger.warning(text)
        except Exception as failure:  # noqa: BLE001 -- the error path must not raise
            log_to_stderr("WARN", text, failure)
        return True

    def error(self, reason: str, message: str) -> bool:
        """Log `message` as an error unless `reason` was logged less than a period ago; True when logged."""
        text = self._admit(reason, message)
        if text is None:
            return False
        try:
            self._logger.error(text)
        except Exception as failure:  # noqa: BLE001 -- the error path must not raise
            log_to_stderr("ERROR", text, failure)
        return True

    def _admit(self, reason: str, message: str) -> Optional[str]:
        """The line to log now (with the count suppressed since the last one), or None while throttled."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(reason)
            if last is not None and now - last < self._period_s:
                self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
                return None
            self._last[reason] = now
            suppressed = self._suppressed.pop(reason, 0)
        if suppressed and last is not None:
            message += f" ({suppressed} more like this in the last {now - last:.0f} s)"
        return message


def log_to_stderr(severity: str, text: str, failure: BaseException) -> None:
    """A line the ROS logger could not take, on stderr instead (best effort: nothing raises from here)."""
    try:
        sys.stderr.write(f"[{severity}] [dav2_ros]: {text} (the ROS logger failed: {type(failure).__name__})\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 -- nowhere left to say it
        pass

"""Warnings throttled per reason: the first of each kind at once, then at most one per period, each
saying how many were suppressed since the last one."""

from __future__ import annotations

import threading
import time
from typing import Any


class RejectionLog:
    """Throttles warnings by a reason key (rclpy's `throttle_duration_sec` throttles per call site,
    which would let one noisy reason hide another)."""

    def __init__(self, logger: Any, period_s: float) -> None:
        self._logger = logger
        self._period_s = period_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, reason: str, message: str, error: bool = False) -> bool:
        """Log `message` unless `reason` was logged less than a period ago; True when it was logged."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(reason)
            if last is not None and now - last < self._period_s:
                self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
                return False
            self._last[reason] = now
            suppressed = self._suppressed.pop(reason, 0)
        if suppressed:
            message += f" ({suppressed} more like this in the last {now - last:.0f} s)"
        (self._logger.error if error else self._logger.warning)(message)
        return True

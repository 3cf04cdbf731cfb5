"""What a stream run measures besides counters: latency percentiles and the node's RSS over time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import psutil


@dataclass(frozen=True)
class Percentiles:
    """Latency percentiles in milliseconds over `n` samples."""

    n: int
    p50_ms: Optional[float]
    p99_ms: Optional[float]
    max_ms: Optional[float]

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Percentiles":
        if not seconds:
            return cls(0, None, None, None)
        values = np.asarray(seconds, dtype=np.float64) * 1e3
        return cls(len(values), float(np.percentile(values, 50)), float(np.percentile(values, 99)),
                   float(values.max()))

    def text(self) -> str:
        if not self.n:
            return "n/a"
        return f"{self.p50_ms:.0f} / {self.p99_ms:.0f} ms"


class RssSampler:
    """The node's RSS every `period_s` seconds on a thread, with the time of each sample."""

    def __init__(self, pid: int, period_s: float = 0.5) -> None:
        self._process = psutil.Process(pid)
        self._period_s = period_s
        self.samples: list[tuple[float, float]] = []  # (time.monotonic(), MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss_sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self._process.memory_info().rss / 1e6))
            except psutil.Error:
                return
            self._stop.wait(self._period_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def at(self, when: float) -> float:
        """The first sample taken at or after monotonic time `when` (the last one if none)."""
        for t, mb in self.samples:
            if t >= when:
                return mb
        return self.samples[-1][1]

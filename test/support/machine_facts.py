"""The machine the figures come from: its CPU model, cores, load and memory."""

from __future__ import annotations

import os

import psutil


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown CPU" where it says none)."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    return model


def environment_note() -> str:
    """The machine the figures come from (they depend on it): CPU model, cores, load, memory."""
    load = os.getloadavg()
    return (f"{cpu_model()}, {os.cpu_count()} cores, load average {load[0]:.1f} (1 min) / {load[2]:.1f} (15 min) "
            f"at the end, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM")

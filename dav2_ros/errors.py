"""The one exception type for refused input messages, with a short reason key for per-reason counters, and the size
limits every decoder applies. At the bottom of the package: geometry, conversions and the pipeline all raise it."""

from __future__ import annotations

#: Largest image side (pixels) accepted from any message; larger declared sizes are refused as
#: ``bad_size`` before any allocation (a 16384 x 16384 RGB image is already 805 MB).
MAX_SIDE = 16384
#: Largest pixel count accepted (64 Mpx, 192 MB as RGB): a corrupt header declaring 16000 x 16000
#: must not make the decoder allocate three quarters of a gigabyte.
MAX_PIXELS = 1 << 26


def size_problem(width: int, height: int) -> str | None:
    """Why a ``width`` x ``height`` image is refused (``bad_size``), or None when it is acceptable."""
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        return f"size {width}x{height} is outside 1..{MAX_SIDE} pixels per side"
    if width * height > MAX_PIXELS:
        return f"size {width}x{height} has more than {MAX_PIXELS} pixels"
    return None


class InputRejected(ValueError):
    """An input message (Image, CompressedImage, CameraInfo) that cannot be used, and why.

    Args:
        reason: a short, stable key such as ``"unsupported_encoding"`` or ``"bad_step"``; callers
            count rejections per reason (diagnostics) and throttle warnings per reason.
        detail: one human-readable sentence naming the offending field and value.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # keep pickling (multiprocessing, pytest-xdist) working with two arguments
        return (type(self), (self.reason, self.detail))

"""Handling a failed step of the node without letting it end the node: run a step and get its error back after
its `except` block (`attempt`), describe an error in one line, tell out-of-memory, and drop what a failed frame's
tracebacks hold."""

from __future__ import annotations

import traceback
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")


def attempt(action: Callable[..., T], *args: Any) -> tuple[Optional[T], Optional[Exception]]:
    """`(action(*args), None)`, or `(None, error)` when it raised: the error comes back after its `except` block
    has exited, so the caller handles it with no traceback pinned by a running handler."""
    try:
        return action(*args), None
    except Exception as error:  # noqa: BLE001 -- returned to the caller, which counts and says it
        return None, error


def describe(error: BaseException) -> str:
    """`Type: message`, or `Type` for an empty message; never raises (an error's `__str__` may)."""
    name = type(error).__name__
    try:
        text = str(error).strip()
    except Exception as failure:  # noqa: BLE001
        return f"{name} (its message cannot be read: {type(failure).__name__})"
    return f"{name}: {text}" if text else name


def is_out_of_memory(error: BaseException) -> bool:
    """`dav2_ros.engines.torch_runtime.device.is_out_of_memory`, False where it cannot tell (it reads the message)."""
    try:
        from dav2_ros.engines.torch_runtime.device import is_out_of_memory  # torch is loaded by now

        return is_out_of_memory(error)
    except Exception:  # noqa: BLE001
        return False


def drop_tracebacks(error: Optional[BaseException]) -> None:
    """Clear the local variables of the frames in the tracebacks of `error` and its causes, and drop the
    tracebacks: what a failed frame's functions held (its tensors) can be freed now."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if error.__traceback__ is not None:
            traceback.clear_frames(error.__traceback__)
            error.__traceback__ = None
        error = error.__cause__ or error.__context__

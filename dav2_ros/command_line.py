"""How the command-line tools end on an error: one line `<prog>: error: <what>` on stderr and an exit status, never
a traceback (shared by dav2_infer, dav2_export, dav2_weights, bag_to_depth and dav2_bags; at the bottom of the
package so the cli and offline tools can both use it)."""

from __future__ import annotations

import sys
from collections.abc import Callable


def one_line(error: BaseException) -> str:
    """The error as one line: an OSError as `reason: file`, anything else its message with the lines joined."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return "; ".join(line for line in str(error).splitlines() if line.strip()) or type(error).__name__


def run_command(prog: str, action: Callable[[], int], *, errors: tuple[type[BaseException], ...],
                usage_errors: tuple[type[BaseException], ...] = (), interrupted: str = "interrupted") -> int:
    """`action()`'s status; 2 after one of `usage_errors`, 1 after one of `errors` (ValueError covers the model's
    CheckpointError and bad option values), 130 after Ctrl-C (`interrupted` says what was left), each with its line."""
    try:
        return action()
    except usage_errors as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except errors as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130

"""One model setup for the node and the offline tool in the tests: stand-in weights, CPU fp32, torch."""

from __future__ import annotations

import contextlib
import io
import pathlib
from collections.abc import Mapping
from typing import Any


def standin_params(empty_weights_dir: pathlib.Path, input_size: int = 98) -> dict[str, Any]:
    """Node parameters for fast, deterministic test runs: random stand-in vits weights (the folder must
    hold no checkpoint), CPU fp32, one inference thread, a small input size; backend torch, the reference: these
    runs compare the node with the offline tool bit for bit, which the OpenVINO engine did not give between two
    processes (1.4e-5 m apart; the engines' own tests are test_engines_*.py and test_model_parity.py)."""
    return {"allow_random_weights": True, "weights_dir": str(empty_weights_dir), "input_size": input_size,
            "encoder": "vits", "model_type": "metric", "device": "cpu", "backend": "torch", "precision": "fp32",
            "num_threads": 1}


def reliable_input_params(*topics: str) -> dict[str, str]:
    """Node parameters that make its subscriptions to `topics` reliable (QoS overrides; the default is
    best effort). For lockstep replays: on this machine a best-effort 1280x720 bgr8 frame (2.7 MB)
    never reached the node, a 640x480 one did."""
    return {f"qos_overrides.{'/' + t.lstrip('/')}.subscription.reliability": "reliable" for t in topics}


def offline_args(params: Mapping[str, Any]) -> list[str]:
    """The same parameters as `bag_to_depth --param NAME=VALUE` options."""
    def text(value: Any) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    return [arg for name, value in params.items() for arg in ("--param", f"{name}={text(value)}")]


def run_main(module: Any, args: list[str]) -> tuple[int, str, str]:
    """`module.main(args)` of an offline tool in this process; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = module.main(args)
    return code, out.getvalue(), err.getvalue()

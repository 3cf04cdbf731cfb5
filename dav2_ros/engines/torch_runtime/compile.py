"""Optional torch.compile of the network, for CUDA (where fusing the elementwise ops and, with
"reduce-overhead", CUDA graphs pay) -- off by default, and not worth it on small CPUs: on the 2-core AVX2 machine
this project is measured on, compiling vits took 150 s and gave no speed-up at 518 (benchmarks/README.md).

The compiled module is built once per frame geometry (dynamic=False), so the caller warms it up at start with
the camera's frame size (`DepthEstimator.warmup`); a new size recompiles once.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

import torch

LOG = logging.getLogger("dav2_ros.model")

CompileMode = Literal["default", "reduce-overhead", "max-autotune"]
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune")


def compile_estimator(estimator, mode: CompileMode = "default") -> None:
    """Replace `estimator.model` by its torch.compile'd version (in place; same parameters, same outputs up to
    rounding). Compilation itself happens on the next call: run `estimator.warmup(...)` right after.

    Raises:
        ValueError: an unknown mode, or a model holding int8 layers (their packed weights are opaque to the
            compiler: it would split the graph at every Linear and recompile per block).
        RuntimeError: torch.compile is unavailable in this torch build.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode {mode!r} is not one of {', '.join(COMPILE_MODES)}")
    if not hasattr(torch, "compile"):
        raise RuntimeError(f"torch {torch.__version__} has no torch.compile")
    if estimator.precision == "int8":
        raise ValueError("torch.compile does not apply to precision 'int8' (the quantized Linear layers break the "
                         "graph); use int8 or compile, not both")
    if getattr(estimator.model, "_dav2_compiled", False):
        return
    start = time.perf_counter()
    compiled = torch.compile(estimator.model, mode=mode, dynamic=False)
    compiled._dav2_compiled = True  # type: ignore[attr-defined]
    compiled.config = estimator.model.config  # type: ignore[attr-defined]
    estimator.model = compiled
    LOG.info("torch.compile(mode=%s) set up in %.1f s; the first frame of each size compiles", mode,
             time.perf_counter() - start)

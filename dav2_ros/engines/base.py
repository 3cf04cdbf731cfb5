"""What every engine is: the protocol `DepthEstimator` calls, its options, and the errors it may raise.

An engine runs the Depth Anything V2 network and nothing else: a normalized float32 (B, 3, h, w) batch in
(h, w multiples of 14, as `dav2_ros.engines.preprocess` makes it), the network's float32 (B, h, w) output out,
before any upsampling to the image's size. Preprocessing, upsampling, masking and the cloud stay in one place
(`DepthEstimator`, `FrameProcessor`) for every engine, so outputs and message layouts do not depend on it.

Torch-free on purpose: the registry and the parameter table import this module without loading torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

import numpy as np

#: Network input shapes an engine keeps compiled at once (one per camera frame size and batch size), like
#: the device path's buffers; the least recently used one is dropped beyond this.
DEFAULT_MAX_SHAPES = 4
#: Environment variable naming the engines' cache folder (compiled models), instead of the weights folder's.
ENGINE_CACHE_ENV = "DAV2_ENGINE_CACHE"


@dataclass(frozen=True)
class EngineOptions:
    """What the caller may choose for any engine; an engine ignores what does not apply to it.

    Attributes:
        num_threads: CPU threads for inference; 0 = the engine's default (all cores).
        cache_dir: folder for compiled models (OpenVINO's CACHE_DIR, exported files); None = `$DAV2_ENGINE_CACHE`
            when set, else `engines/` in the package's cache folder (`dav2_ros.weights.cache.default_weights_dir()`).
        max_shapes: network input shapes kept compiled at once (LRU), >= 1.
        onnx_providers: onnxruntime only: execution providers in order of preference ("tensorrt", "cuda", "cpu" or
            ONNX Runtime's names); empty = TensorRT > CUDA > CPU on CUDA, CPU otherwise.
        onnx_model: onnxruntime only: an ONNX file written by `dav2_export` for its network input size (checked
            against the loaded weights); None = every size exported into the cache on first use.
    """

    num_threads: int = 0
    cache_dir: Optional[Path] = None
    max_shapes: int = DEFAULT_MAX_SHAPES
    onnx_providers: tuple[str, ...] = ()
    onnx_model: Optional[Path] = None

    def engine_cache(self, backend: str) -> Path:
        """The cache folder of one backend (created by the engine when it writes there)."""
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser() / backend
        env = os.environ.get(ENGINE_CACHE_ENV, "").strip()
        if env:
            return Path(env).expanduser() / backend
        from dav2_ros.weights.cache import default_weights_dir

        return default_weights_dir() / "engines" / backend


class Engine(Protocol):
    """One network on one device at one precision; used from one thread at a time.

    Attributes:
        backend: the registry name ("torch", "openvino", "onnxruntime").
        precision: the precision it runs, resolved ("fp32", "fp16", "bf16", "int8").
        device: where it runs, in torch's words ("cpu", "cuda:0").
    """

    backend: str
    precision: str
    device: str

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 C-contiguous (B, 3, h, w), normalized -> float32 (B, h, w), the network's raw output.

        Raises:
            EngineShapeError: this input shape cannot be compiled/run (the caller refuses those frames and goes on).
        """
        ...

    def describe(self) -> str:
        """One line for the start-up log and diagnostics: engine, version, precision, threads."""
        ...


class BackendUnavailable(ValueError):
    """A backend that cannot run here (not installed, not for this device or precision); the message is one line
    that says why and, when it is a missing package, the pip command."""


class EngineShapeError(RuntimeError):
    """The engine could not compile or run the network at one input shape; other shapes may still work.

    Attributes:
        shape: the (B, 3, h, w) input shape that failed.
    """

    def __init__(self, shape: tuple[int, ...], detail: str) -> None:
        super().__init__(f"the {shape[3]}x{shape[2]} network input (batch {shape[0]}) could not be compiled: {detail}")
        self.shape = shape
        self.detail = detail

"""The ONNX Runtime engine: the exported network (``dav2_ros.engines.export``) under ONNX Runtime's execution
providers -- TensorRT (fp16, engine cache) -> CUDA -> CPU on a CUDA machine, the CPU provider otherwise.

Models: one ONNX file per network input size (height x width; the batch is dynamic), because the exporters
bake the position-embedding size into the graph. A file given with ``EngineOptions.onnx_model`` (what
`dav2_export` wrote) serves its own size after its metadata is checked against the loaded weights; any other
size is exported from the loaded torch network into the cache folder on its first frame
(``<cache>/onnxruntime/models/<encoder>_<type>[_<max_depth>m]_<hash>_<h>x<w>.onnx``, keyed by the weights,
the network code and the torch version), checked against torch on the bundled camera frame first, so a restart
(and every later start with the same weights) loads it without tracing. Sessions are kept per size, the least
recently used dropped beyond ``EngineOptions.max_shapes``.

Execution providers (https://onnxruntime.ai/docs/execution-providers/): the order of
``EngineOptions.onnx_providers`` (``tensorrt``, ``cuda``, ``cpu`` or ONNX Runtime's full names), or by
default TensorRT -> CUDA -> CPU where the device is CUDA (each only if this onnxruntime build has it:
``onnxruntime-gpu`` has all three) and CPU alone otherwise. ONNX Runtime hands every node to the first
provider in the list that takes it, so the CPU provider is the fallback for what the GPU providers lack.
TensorRT options: ``trt_fp16_enable`` (precision fp16, the default on CUDA), ``trt_engine_cache_enable`` +
``trt_engine_cache_path`` and ``trt_timing_cache_enable`` + ``trt_timing_cache_path`` under the cache folder
(the first build takes minutes on a Jetson; later starts read the engine), and an optimization profile for
batches 1..4 at the file's size (``trt_profile_min/opt/max_shapes``), so several cameras do not rebuild it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .base import BackendUnavailable, EngineOptions, EngineShapeError
from .export import (INPUT_NAME, TRT_MAX_BATCH, ExportError, bundled_frame, cache_key, check_batch, export_checked,
                     model_metadata, weights_fingerprint)

if TYPE_CHECKING:
    import torch

    from dav2_ros.model.depth_anything_v2 import DepthAnythingV2

LOG = logging.getLogger("dav2_ros.model")

PIP_COMMAND = "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA and TensorRT execution providers)"
TENSORRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
#: Short names accepted in the providers setting.
PROVIDER_ALIASES = {"tensorrt": TENSORRT, "trt": TENSORRT, "cuda": CUDA, "cpu": CPU}
#: Metadata keys a given ONNX file must agree on with the loaded network.
_CHECKED_METADATA = ("dav2_ros.encoder", "dav2_ros.model_type", "dav2_ros.max_depth", "dav2_ros.weights")


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable(f"backend onnxruntime is not installed: {PIP_COMMAND}") from None
    return onnxruntime


def resolve_providers(names: tuple[str, ...], device_type: str, available: list[str]) -> list[str]:
    """The execution providers to ask for, in order: `names` (aliases resolved), or the default for the device.

    Raises:
        BackendUnavailable: an unknown name, a provider this onnxruntime build lacks, or a GPU provider asked for
            while the device is the CPU.
    """
    if not names:
        if device_type == "cuda":
            chosen = [p for p in (TENSORRT, CUDA) if p in available] + [CPU]
            if len(chosen) == 1:
                raise BackendUnavailable(f"backend onnxruntime on CUDA needs the CUDA or TensorRT execution provider, "
                                         f"which this onnxruntime lacks (it has {', '.join(available)}): "
                                         f"pip install onnxruntime-gpu (in place of onnxruntime)")
            return chosen
        return [CPU]
    chosen = []
    for name in names:
        full = PROVIDER_ALIASES.get(name.strip().lower(), name.strip())
        if full not in available:
            known = ", ".join(PROVIDER_ALIASES) + ", or one of " + ", ".join(available)
            if full in (TENSORRT, CUDA):
                raise BackendUnavailable(f"execution provider {name} is not in this onnxruntime (it has "
                                         f"{', '.join(available)}): pip install onnxruntime-gpu (in place of "
                                         f"onnxruntime)")
            raise BackendUnavailable(f"unknown onnxruntime execution provider {name!r} (use {known})")
        if full in (TENSORRT, CUDA) and device_type != "cuda":
            raise BackendUnavailable(f"execution provider {name} needs device cuda, the device is {device_type}")
        chosen.append(full)
    return list(dict.fromkeys(chosen))


def resolve_precision(precision: str, providers: list[str]) -> str:
    """auto -> fp16 when TensorRT runs the network (its fp16 mode), else fp32; fp16 needs TensorRT.

    Raises:
        BackendUnavailable: fp16 without the TensorRT provider, or a precision ONNX Runtime does not run here.
    """
    if precision == "auto":
        return "fp16" if TENSORRT in providers else "fp32"
    if precision == "fp16" and TENSORRT not in providers:
        raise BackendUnavailable("backend onnxruntime runs fp16 through the TensorRT execution provider only (CUDA, "
                                 "onnxruntime-gpu); use precision fp32 or auto")
    if precision not in ("fp32", "fp16"):
        raise BackendUnavailable(f"backend onnxruntime runs precision fp32 (CPU, CUDA) or fp16 (TensorRT), "
                                 f"not {precision}")
    return precision


class OnnxRuntimeEngine:
    """The exported network in ONNX Runtime, one session per network input size (dynamic batch).

    Args:
        model: the torch network (fp32, CPU): exported for sizes that have no file yet, and the reference the
            exports are checked against.
        device: the resolved torch device ("cpu", "cuda:N").
        precision: the user's choice ("auto", "fp32", "fp16").
        options: threads, cache folder, sizes kept, providers, a given ONNX file.
    """

    backend = "onnxruntime"

    def __init__(self, model: DepthAnythingV2, device: torch.device, precision: str, options: EngineOptions) -> None:
        self._ort = _import_onnxruntime()
        self._model = model.eval().requires_grad_(False).float()
        self._options = options
        self.device = str(device)
        self._device_id = (device.index or 0) if device.type == "cuda" else 0
        self.providers = resolve_providers(tuple(options.onnx_providers), device.type,
                                           self._ort.get_available_providers())
        self.precision = resolve_precision(precision, self.providers)
        self.cache_dir = options.engine_cache("onnxruntime")
        self._weights = weights_fingerprint(self._model)
        self._key = cache_key(self._model, self._weights)
        self._sessions: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._failed: dict[tuple[int, int], str] = {}
        self._lock = threading.Lock()
        self._given: Optional[tuple[tuple[int, int], Path]] = None
        #: seconds spent exporting and/or loading, per network input size (start-up figures and tests).
        self.load_seconds: dict[tuple[int, int], float] = {}
        if options.onnx_model:
            self._given = self._check_given(Path(options.onnx_model).expanduser())

    # ----- Engine ---------------------------------------------------------------------------------------------
    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 (B, 3, h, w) -> float32 (B, h, w) through the session of size h x w."""
        session = self._session_for(int(batch.shape[2]), int(batch.shape[3]), tuple(int(n) for n in batch.shape))
        output = session.run(None, {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return np.asarray(output, dtype=np.float32)

    def describe(self) -> str:
        threads = self._options.num_threads or "all"
        given = f", model {self._given[1]}" if self._given else ""
        return (f"ONNX Runtime {self._ort.__version__}, providers {' > '.join(self.providers)}, {self.precision}, "
                f"{threads} CPU threads, exported models in {self.cache_dir / 'models'}{given}")

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """The network input sizes (h, w) with a session now, least recently used first."""
        return list(self._sessions)

    # ----- sessions -------------------------------------------------------------------------------------------
    def _session_for(self, height: int, width: int, shape: tuple[int, ...]):
        key = (height, width)
        with self._lock:
            if key in self._sessions:
                self._sessions.move_to_end(key)
                return self._sessions[key]
            if key in self._failed:
                raise EngineShapeError(shape, self._failed[key])
            start = time.perf_counter()
            try:
                session = self._load(height, width)
            except (ExportError, OSError, RuntimeError) as error:
                text = str(error).strip().splitlines()
                self._failed[key] = f"{type(error).__name__}: {text[0] if text else ''}"[:300]
                raise EngineShapeError(shape, self._failed[key]) from None
            self.load_seconds[key] = time.perf_counter() - start
            LOG.info("ONNX Runtime: network input %dx%d ready in %.1f s (%s)", height, width, self.load_seconds[key],
                     " > ".join(session.get_providers()))
            self._sessions[key] = session
            while len(self._sessions) > max(1, self._options.max_shapes):
                self._sessions.popitem(last=False)
            return session

    def _load(self, height: int, width: int):
        """The session for this size: the given file, the cached export, or a new export into the cache."""
        if self._given is not None and self._given[0] == (height, width):
            return self._session(self._given[1], height, width)
        path = self.cache_dir / "models" / f"{self._key}_{height}x{width}.onnx"
        if not path.is_file():
            LOG.info("ONNX Runtime: exporting the network at input %dx%d into %s (once per size and weights)",
                     height, width, path.parent)
            path.parent.mkdir(parents=True, exist_ok=True)
            config = self._model.config
            metadata = model_metadata(config.encoder, config.model_type, float(config.max_depth), height, width,
                                      self._weights, "")
            export_checked(self._model, "onnx", height, width, path.parent, path.stem,
                           check_batch(bundled_frame(), height, width), metadata=metadata)
        return self._session(path, height, width)

    def _session(self, path: Path, height: int, width: int):
        """An InferenceSession of `path` with this engine's providers and threads."""
        ort = self._ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self._options.num_threads > 0:
            options.intra_op_num_threads = int(self._options.num_threads)
        session = ort.InferenceSession(str(path), options, providers=self._provider_list(height, width))
        missing = [p for p in self.providers if p not in session.get_providers()]
        if missing:
            LOG.warning("ONNX Runtime did not enable %s (a missing CUDA/TensorRT library?); running on %s",
                        ", ".join(missing), " > ".join(session.get_providers()))
        return session

    def _provider_list(self, height: int, width: int) -> list:
        """The providers with their options (ONNX Runtime's documented option names)."""
        cache = self.cache_dir
        shapes = f"3x{height}x{width}"
        result: list = []
        for provider in self.providers:
            if provider == TENSORRT:
                result.append((TENSORRT, {
                    "device_id": self._device_id,
                    "trt_fp16_enable": self.precision == "fp16",
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache / "tensorrt"),
                    "trt_timing_cache_enable": True,
                    "trt_timing_cache_path": str(cache / "tensorrt"),
                    "trt_profile_min_shapes": f"{INPUT_NAME}:1x{shapes}",
                    "trt_profile_opt_shapes": f"{INPUT_NAME}:1x{shapes}",
                    "trt_profile_max_shapes": f"{INPUT_NAME}:{TRT_MAX_BATCH}x{shapes}",
                }))
            elif provider == CUDA:
                result.append((CUDA, {"device_id": self._device_id}))
            else:
                result.append(provider)
        return result

    def _check_given(self, path: Path) -> tuple[tuple[int, int], Path]:
        """A user-given ONNX file: it must exist, come from `dav2_export` and fit the loaded weights; its size."""
        if not path.is_file():
            raise BackendUnavailable(f"onnxruntime model {path} not found (write one with dav2_export, or leave it "
                                     f"empty to export into the cache)")
        try:
            session = self._ort.InferenceSession(str(path), providers=[CPU])
        except Exception as error:  # noqa: BLE001 -- onnxruntime raises its own exception classes
            raise BackendUnavailable(f"onnxruntime model {path} does not load: {str(error).splitlines()[0]}") from None
        found = session.get_modelmeta().custom_metadata_map
        config = self._model.config
        expected = model_metadata(config.encoder, config.model_type, float(config.max_depth), 0, 0, self._weights, "")
        for key in _CHECKED_METADATA:
            if found.get(key) != expected[key]:
                what = key.split(".", 1)[1]
                raise BackendUnavailable(
                    f"onnxruntime model {path} does not fit the loaded network: its {what} is "
                    f"{found.get(key, 'not recorded')!r}, the network's {expected[key]!r} (export it again with "
                    f"dav2_export from the same checkpoint and settings)")
        return (int(found["dav2_ros.input_height"]), int(found["dav2_ros.input_width"])), path


def create_engine(model: DepthAnythingV2, device: torch.device, precision: str,
                  options: EngineOptions) -> OnnxRuntimeEngine:
    """The registry's factory. Nothing is exported here: each network input size is, on its first frame (the
    node's warm-up frame is the first), unless a given or cached file has it."""
    if device.type not in ("cpu", "cuda"):
        raise BackendUnavailable(f"backend onnxruntime runs on the CPU or CUDA, not on {device}")
    return OnnxRuntimeEngine(model, device, precision, options)

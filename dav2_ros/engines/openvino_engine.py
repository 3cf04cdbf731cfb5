"""The OpenVINO engine (CPU): the loaded torch network converted in-process with `ov.convert_model`, one static
input shape at a time, compiled on first use and kept per shape (least recently used dropped beyond
`EngineOptions.max_shapes`).

Why static shapes: the ViT's position embeddings are interpolated to the token grid, whose size is traced into
the graph as constants; a new frame size (or batch size) is converted and compiled once, when it first comes.
Both steps are cached under the package's cache folder (`EngineOptions.engine_cache("openvino")`): the converted
model (`models/<encoder>_<type>_<fingerprint of weights and code>_<shape>.xml`) and OpenVINO's compiled blobs
(`CACHE_DIR`), so a restart with the same weights neither traces nor compiles (under a second per shape).

Precision (`INFERENCE_PRECISION_HINT`): auto -> bf16 on a CPU with native bf16 (AVX512-BF16/AMX), else f32;
fp32; bf16; int8 = NNCF weight compression (INT8_ASYM, data-free: the Linear and convolution weights stored as
int8 with per-channel scales, activations in the auto precision) -- no calibration set to ship or pick, the same
result on every robot; its accuracy is measured in test/unit/model/test_model_parity.py and docs/performance.md.
`PERFORMANCE_HINT` LATENCY (one frame at a time, all threads on it); `INFERENCE_NUM_THREADS` from num_threads.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import openvino as ov
import torch

from dav2_ros.model.depth_anything_v2 import DepthAnythingV2
from dav2_ros.engines.torch_runtime.device import cpu_has_native_bf16

from .base import BackendUnavailable, EngineOptions, EngineShapeError
from .tracing import trace

LOG = logging.getLogger("dav2_ros.model")

_HINTS = {"fp32": "f32", "bf16": "bf16"}
#: int8: only the ViT's matrix products get int8 weights (as torch's int8 mode); the patch embedding and the DPT
#: head's convolutions keep theirs (with them int8 too: 3.2 % mean error on the vitb case instead of <2 %).
INT8_KEPT_TYPES = ["Convolution", "ConvolutionBackpropData", "GroupConvolution"]


def resolve_precision(precision: str) -> str:
    """auto -> bf16 where the CPU has native bf16, else fp32; fp32, bf16 and int8 as asked; others refused."""
    if precision == "auto":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision not in ("fp32", "bf16", "int8"):
        raise BackendUnavailable(f"backend openvino runs precision fp32, bf16 or int8 on the CPU, not {precision}")
    return precision


class OpenVinoEngine:
    """`DepthAnythingV2` compiled by OpenVINO for the CPU, one compiled model per input shape.

    Args:
        model: the torch network (fp32, CPU); kept to convert new shapes.
        precision: resolved ("fp32", "bf16", "int8").
        options: threads, cache folder, shapes kept.
    """

    backend = "openvino"
    device = "cpu"

    def __init__(self, model: DepthAnythingV2, precision: str, options: EngineOptions) -> None:
        self.precision = precision
        self._model = model.eval().requires_grad_(False).float()
        self._options = options
        self._core = ov.Core()
        self.cache_dir = options.engine_cache("openvino")
        self._config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        activations = "fp32" if precision == "int8" and not cpu_has_native_bf16() else precision
        self._config["INFERENCE_PRECISION_HINT"] = _HINTS.get(activations, "bf16")
        if options.num_threads > 0:
            self._config["INFERENCE_NUM_THREADS"] = int(options.num_threads)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            self._config["CACHE_DIR"] = str(self.cache_dir)
        except OSError as error:
            LOG.warning("OpenVINO model cache disabled, cannot create %s: %s (every start compiles again)",
                        self.cache_dir, error)
        if precision == "bf16" and not cpu_has_native_bf16():
            LOG.warning("OpenVINO bf16 on a CPU without AVX512-BF16/AMX: OpenVINO falls back to f32 here")
        self._compiled: OrderedDict[tuple[int, ...], ov.CompiledModel] = OrderedDict()
        self._failed: dict[tuple[int, ...], EngineShapeError] = {}
        self._lock = threading.Lock()
        self._fingerprint: str | None = None
        #: seconds spent converting and compiling, per shape (start-up figures and tests).
        self.compile_seconds: dict[tuple[int, ...], float] = {}
        #: shapes traced and converted by this engine (not read from the converted-model cache).
        self.converted: list[tuple[int, ...]] = []

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The input shapes compiled now, least recently used first."""
        return list(self._compiled)

    def run(self, batch: np.ndarray) -> np.ndarray:
        shape = tuple(int(n) for n in batch.shape)
        compiled = self._compiled_for(shape)
        result = compiled(np.ascontiguousarray(batch, dtype=np.float32))[0]
        return np.array(result, dtype=np.float32, copy=True)

    def describe(self) -> str:
        threads = self._options.num_threads or "all"
        int8 = ", int8 weights (NNCF weight compression)" if self.precision == "int8" else ""
        return (f"OpenVINO {ov.get_version().split('-')[0]} on the CPU, {self._config['INFERENCE_PRECISION_HINT']} "
                f"inference precision{int8}, latency hint, {threads} threads, model cache {self.cache_dir}")

    # ----- internals ----------------------------------------------------------------------------------------
    def _compiled_for(self, shape: tuple[int, ...]) -> ov.CompiledModel:
        with self._lock:
            if shape in self._compiled:
                self._compiled.move_to_end(shape)
                return self._compiled[shape]
            if shape in self._failed:
                raise self._failed[shape]
            start = time.perf_counter()
            try:
                compiled = self._compile(shape)
            except Exception as error:  # noqa: BLE001 -- any converter/compiler failure: this shape only
                text = str(error).strip().splitlines()
                failure = EngineShapeError(shape, f"{type(error).__name__}: {text[0] if text else ''}"[:300])
                self._failed[shape] = failure
                raise failure from None
            self.compile_seconds[shape] = time.perf_counter() - start
            LOG.info("OpenVINO: network compiled for input %s in %.1f s", shape, self.compile_seconds[shape])
            self._compiled[shape] = compiled
            while len(self._compiled) > max(1, self._options.max_shapes):
                self._compiled.popitem(last=False)
            return compiled

    def _compile(self, shape: tuple[int, ...]) -> ov.CompiledModel:
        """The network at this static shape, compiled: read from the converted-model cache, or traced and converted
        (NNCF int8 weights on request) and saved there first; compiled with CACHE_DIR (a blob read on a restart)."""
        xml = self._ir_path(shape)
        if xml is not None and xml.is_file():
            try:
                return self._core.compile_model(self._core.read_model(str(xml)), "CPU", self._config)
            except RuntimeError as error:  # a damaged cache file: convert again
                LOG.warning("OpenVINO: cached model %s unusable (%s); converting again", xml, error)
        ov_model = self._convert(shape)
        if xml is not None:
            self._save(ov_model, xml)
        return self._core.compile_model(ov_model, "CPU", self._config)

    def _convert(self, shape: tuple[int, ...]) -> ov.Model:
        """Trace the torch network at `shape` (`tracing.trace`: constant position embeddings) and convert it;
        tracing first is ~3x faster than handing `ov.convert_model` the module (no trace check, no second pass)."""
        ov_model = ov.convert_model(trace(self._model, shape), input=[ov.PartialShape(list(shape))])
        if self.precision == "int8":
            import nncf

            ov_model = nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM,
                                             ignored_scope=nncf.IgnoredScope(types=INT8_KEPT_TYPES, validate=False))
        self.converted.append(shape)
        return ov_model

    def _ir_path(self, shape: tuple[int, ...]) -> Path | None:
        """Where the converted model of this shape is cached: named by the weights' and the network code's
        fingerprint, the shape and int8; None when the cache folder is unusable."""
        if "CACHE_DIR" not in self._config:
            return None
        if self._fingerprint is None:
            self._fingerprint = network_fingerprint(self._model)
        kind = "_int8" if self.precision == "int8" else ""
        return self.cache_dir / "models" / f"{self._fingerprint}_{'x'.join(map(str, shape))}{kind}.xml"

    @staticmethod
    def _save(ov_model: ov.Model, xml: Path) -> None:
        """Write the IR pair through temporary names and rename (.bin first), so a reader never sees half a model."""
        try:
            xml.parent.mkdir(parents=True, exist_ok=True)
            tmp = xml.with_name(f".{xml.stem}.{os.getpid()}.xml")
            ov.save_model(ov_model, str(tmp), compress_to_fp16=False)
            os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
            os.replace(tmp, xml)
        except (OSError, RuntimeError) as error:
            LOG.warning("OpenVINO: could not cache the converted model in %s: %s", xml.parent, error)


def network_sources(package: Path) -> list[Path]:
    """The files that define the traced network (not the estimator, the device path...): a change to one of them
    makes the cached models stale."""
    model = package / "model"
    names = ("config.py", "depth_anything_v2.py", "dinov2.py", "dpt_head.py")
    return [model / name for name in names] + sorted(model.joinpath("layers").rglob("*.py")) + \
        [package / "engines" / "tracing.py"]


def network_fingerprint(model: DepthAnythingV2) -> str:
    """A short hash of what the converted model depends on: the weights (every tensor's bytes), the network's
    source files and how it is traced, and the torch and OpenVINO versions. About 0.1 s per 100 MB of weights."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{torch.__version__} {ov.get_version()}".encode())
    package = Path(__file__).resolve().parents[1]
    for source in network_sources(package):
        digest.update(source.read_bytes())
    for name, tensor in model.state_dict().items():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return f"{model.config.encoder}_{model.config.model_type}_{digest.hexdigest()}"


def create_engine(model: DepthAnythingV2, device: torch.device, precision: str,
                  options: EngineOptions) -> OpenVinoEngine:
    """The registry's factory. Nothing is converted here: each input shape is, on its first frame (the node's
    warm-up frame is the first)."""
    if device.type != "cpu":
        raise BackendUnavailable(f"backend openvino runs on the CPU, not on {device}: use device cpu, or backend "
                                 "torch (or onnxruntime) on CUDA")
    return OpenVinoEngine(model, resolve_precision(precision), options)

"""The backends by name: what each needs, where it runs, how `auto` picks one, and how an engine is made.

Torch-free (the parameter table imports `BACKEND_CHOICES`); an engine's module is imported only when that
engine is made, so a backend that is not installed costs nothing until it is asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional

from .base import BackendUnavailable, EngineOptions

from dav2_ros.model.config import PRECISION_CHOICES

if TYPE_CHECKING:
    from .base import Engine


@dataclass(frozen=True)
class EngineSpec:
    """One backend of the registry.

    Attributes:
        name: the `backend` value that picks it.
        module: the module whose `create_engine(model, device, precision, options)` makes it (imported on use).
        requires: top-level Python modules it imports, with the pip command that installs them.
        devices: torch device types it runs on ("cpu", "cuda").
        precisions: the precision choices it takes ("auto" always).
        precision_requires: extra modules a precision needs (OpenVINO int8: NNCF), with their pip command.
        summary: what it is, for the README and `--help`.
    """

    name: str
    module: str
    requires: Mapping[str, str]
    devices: tuple[str, ...]
    precisions: tuple[str, ...]
    summary: str
    precision_requires: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


ENGINES: dict[str, EngineSpec] = {
    spec.name: spec for spec in (
        EngineSpec("torch", "dav2_ros.engines.torch_engine", {"torch": "pip install torch"}, ("cpu", "cuda"),
                   PRECISION_CHOICES,
                   "PyTorch eager, the reference (equal to the official code); its on-device frame path on CUDA"),
        EngineSpec("openvino", "dav2_ros.engines.openvino_engine", {"openvino": "pip install openvino"}, ("cpu",),
                   ("auto", "fp32", "bf16", "int8"),
                   "OpenVINO on the CPU, converted in-process from the loaded network, compiled per input shape",
                   precision_requires={"int8": {"nncf": "pip install nncf"}}),
        EngineSpec("onnxruntime", "dav2_ros.engines.onnxruntime_engine",
                   {"onnxruntime": "pip install onnxruntime (onnxruntime-gpu for CUDA/TensorRT)"},
                   ("cpu", "cuda"), ("auto", "fp32", "fp16"),
                   "ONNX Runtime on the exported network (TensorRT/CUDA/CPU execution providers)"),
    )
}
#: The `backend` parameter's choices.
BACKEND_CHOICES: tuple[str, ...] = ("auto", *ENGINES)


def missing_requirement(name: str, precision: str = "auto") -> Optional[str]:
    """The pip command for what backend `name` (at `precision`) lacks here, or None when it can be imported."""
    spec = ENGINES[name]
    needed = dict(spec.requires)
    needed.update(spec.precision_requires.get(precision, {}))
    for module, command in needed.items():
        if importlib.util.find_spec(module) is None:
            return command
    return None


def resolve_backend(backend: str, device_type: str, precision: str = "auto") -> tuple[str, str]:
    """(the engine to run, why) for a `backend` choice on a device type ("cpu"/"cuda") at a precision choice.

    `auto`: torch on CUDA (the reference, with the on-device frame path); on the CPU OpenVINO when it is
    installed (it is in the default install: ~1.7x faster than torch's default there, docs/performance.md), else
    torch.

    Raises:
        BackendUnavailable: an unknown backend, one not installed (naming the pip command), one that does not run
            on this device or at this precision.
    """
    if backend not in BACKEND_CHOICES:
        raise BackendUnavailable(f"backend {backend!r} is not one of {', '.join(BACKEND_CHOICES)}")
    if backend == "auto":
        if device_type != "cpu":
            return "torch", f"auto: torch on {device_type} (the reference network with its on-device frame path)"
        if precision not in ENGINES["openvino"].precisions:
            return "torch", f"auto: torch on the CPU (OpenVINO does not run precision {precision})"
        missing = missing_requirement("openvino", precision)
        if missing is None:
            return "openvino", "auto: OpenVINO on the CPU (installed; faster than torch there)"
        return "torch", f"auto: torch on the CPU, OpenVINO{'' if precision == 'auto' else ' ' + precision} is not " \
                        f"usable here ({missing})"
    spec = ENGINES[backend]
    if device_type not in spec.devices:
        raise BackendUnavailable(f"backend {backend} does not run on {device_type} (it runs on "
                                 f"{', '.join(spec.devices)}); use device cpu, or backend torch on {device_type}")
    if precision not in spec.precisions:
        raise BackendUnavailable(f"backend {backend} does not run precision {precision} (it takes "
                                 f"{', '.join(spec.precisions)})")
    missing = missing_requirement(backend, precision)
    if missing is not None:
        what = f"backend {backend}" + (f" with precision {precision}" if precision in spec.precision_requires else "")
        raise BackendUnavailable(f"{what} is not installed: {missing}")
    return backend, f"{backend} (asked for)"


def create_engine(name: str, model: Any, device: Any, precision: str, options: EngineOptions | None = None) -> Engine:
    """Make engine `name` (resolved, not "auto") for a loaded `DepthAnythingV2` network.

    Args:
        model: the torch network with its weights, fp32 on the CPU (the torch engine moves it to `device`).
        device: the resolved torch.device.
        precision: the precision choice ("auto" included); the engine resolves it and reports it as `.precision`.
        options: threads, cache folder, compiled shapes kept.

    Raises:
        BackendUnavailable: the engine's module is absent (a backend this version does not ship yet), or the
            engine refuses the combination.
    """
    spec = ENGINES[name]
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as error:
        if error.name == spec.module:
            raise BackendUnavailable(f"backend {name} is not part of this version of dav2_ros") from None
        raise BackendUnavailable(f"backend {name} cannot load: {error}") from None
    return module.create_engine(model, device, precision, options or EngineOptions())

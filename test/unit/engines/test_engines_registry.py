"""The engines registry (dav2_ros.engines.registry): the backend choices, how `auto` resolves, and the one-line
refusals (not installed -> the pip command; a device or precision the engine does not run)."""

from __future__ import annotations

import pytest

from dav2_ros.engines import registry
from dav2_ros.engines.base import BackendUnavailable
from dav2_ros.engines.registry import BACKEND_CHOICES, ENGINES, EngineSpec, resolve_backend
from dav2_ros.pipeline.settings import SPECS_BY_NAME, NodeSettings, SettingsError


def test_backend_parameter_takes_the_registry_names() -> None:
    assert BACKEND_CHOICES == ("auto", "torch", "openvino", "onnxruntime")
    assert SPECS_BY_NAME["backend"].choices == BACKEND_CHOICES
    assert SPECS_BY_NAME["backend"].read_only


def test_auto_is_torch_on_cuda() -> None:
    name, why = resolve_backend("auto", "cuda")
    assert name == "torch" and "cuda" in why


def test_unknown_backend_is_refused_with_the_choices() -> None:
    with pytest.raises(BackendUnavailable, match="not one of auto, torch, openvino, onnxruntime"):
        resolve_backend("tensorrt", "cpu")


def test_openvino_on_cuda_is_refused_with_the_reason() -> None:
    with pytest.raises(BackendUnavailable, match="does not run on cuda"):
        resolve_backend("openvino", "cuda")
    with pytest.raises(SettingsError, match="backend openvino runs on the cpu only, not on device cuda"):
        NodeSettings.from_params({"backend": "openvino", "device": "cuda"})


def test_precision_the_engine_lacks_is_refused() -> None:
    with pytest.raises(BackendUnavailable, match="does not run precision fp16"):
        resolve_backend("openvino", "cpu", "fp16")


def test_compile_needs_backend_torch() -> None:
    with pytest.raises(SettingsError, match="torch features"):
        NodeSettings.from_params({"backend": "openvino", "compile": "default"})
    NodeSettings.from_params({"backend": "auto", "compile": "default"})  # auto then means torch (builders)


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = EngineSpec("openvino", "dav2_ros.engines.openvino_engine", {"no_such_module_dav2": "pip install nothing"},
                      ("cpu",), ("auto", "fp32"), "a backend whose package is absent")
    monkeypatch.setitem(registry.ENGINES, "openvino", spec)
    with pytest.raises(BackendUnavailable) as refused:
        resolve_backend("openvino", "cpu")
    assert str(refused.value) == "backend openvino is not installed: pip install nothing"
    name, why = resolve_backend("auto", "cpu")
    assert name == "torch"


def test_every_engine_module_is_named_and_runs_on_the_cpu_or_cuda() -> None:
    for name, spec in ENGINES.items():
        assert spec.module == f"dav2_ros.engines.{name}_engine"
        assert set(spec.devices) <= {"cpu", "cuda"} and "auto" in spec.precisions

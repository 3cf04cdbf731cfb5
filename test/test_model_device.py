"""Device and precision resolution: the user's strings -> one torch.device and one precision, refusals explained."""

from __future__ import annotations

import pytest
import torch

from dav2_ros.model.device import cpu_has_native_bf16, resolve_device, resolve_precision, torch_dtype

HAS_CUDA = torch.cuda.is_available()


def test_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if HAS_CUDA else "cpu")


@pytest.mark.parametrize("text", ["gpu", "cuda:x", "mps0", ""])
def test_unknown_device_string(text: str) -> None:
    with pytest.raises(ValueError, match="is not one of 'auto', 'cpu', 'cuda', 'cuda:N'"):
        resolve_device(text)


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA; the refusal is for machines without it")
@pytest.mark.parametrize("text", ["cuda", "cuda:0"])
def test_cuda_refused_without_cuda(text: str) -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device(text)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_cuda_index_out_of_range() -> None:
    with pytest.raises(ValueError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


def test_precision_auto_on_cpu_follows_native_bf16() -> None:
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if cpu_has_native_bf16() else "fp32")


def test_native_bf16_read_from_cpu_flags() -> None:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        flags = next((line for line in f if line.startswith("flags")), "").split()
    assert cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_explicit_precisions_on_cpu() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="'fp16' needs a CUDA device"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="precision 'int4' is not one of"):
        resolve_precision("int4", cpu)  # type: ignore[arg-type]
    assert torch_dtype("bf16") is torch.bfloat16


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_precision_auto_on_cuda_is_fp16() -> None:
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"

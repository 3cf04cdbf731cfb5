"""Device and precision resolution: the user's strings -> one torch.device and one precision, refusals explained."""

from __future__ import annotations

import pytest
import torch

from dav2_ros.engines.torch_runtime.device import (cpu_has_native_bf16, is_out_of_memory, resolve_device,
                                                   resolve_precision, torch_dtype)

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


@pytest.mark.parametrize("text", [
    # cublasCreate on a thread's first matmul reports a failed allocation as NOT_INITIALIZED (torch's message)
    "CUDA error: CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate(handle)`",
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "CUDA out of memory. Tried to allocate 2.00 GiB",
    "DefaultCPUAllocator: can't allocate memory: you tried to allocate 96636764160 bytes",
], ids=["cublas-not-initialized", "cublas-alloc", "cudnn-alloc", "caching-allocator", "cpu-allocator"])
def test_allocation_failures_of_the_cuda_libraries_count_as_out_of_memory(text: str) -> None:
    assert is_out_of_memory(RuntimeError(text))
    assert not is_out_of_memory(ValueError(text))  # only runtime failures, not programming errors


def test_other_library_errors_are_not_out_of_memory() -> None:
    for text in ("cuDNN error: CUDNN_STATUS_BAD_PARAM", "CUDA error: CUBLAS_STATUS_INVALID_VALUE",
                 "CUDA error: device-side assert triggered"):
        assert not is_out_of_memory(RuntimeError(text)), text

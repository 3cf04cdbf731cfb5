"""Choosing the device and the numeric precision once, from the user's strings, with clear refusals."""

from __future__ import annotations

import re
from functools import lru_cache


import torch

from dav2_ros.model.config import Precision, PrecisionChoice  # noqa: F401 -- re-exported

# "int8" (CPU only): the ViT's Linear layers run int8 GEMMs on fp32 activations quantized per call
# (dav2_ros.engines.torch_runtime.quantize); everything else, and the tensors between layers, stay fp32.
_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
                                   "int8": torch.float32}
# CPU features that give bf16 matrix products in hardware (oneDNN uses them); without them bf16 is emulated.
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" | "cpu" | "cuda" | "cuda:N" -> torch.device; refuses CUDA when there is none (or no such index)."""
    if isinstance(device, torch.device):
        device = str(device)
    text = device.strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise ValueError(f"device {device!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N'")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available "
                         f"(torch {torch.__version__}, built with CUDA {torch.version.cuda})")
    if match.group(1) is None:
        return torch.device("cuda")
    index = int(match.group(1))
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"device {device!r} requested but only {count} CUDA device(s) exist")
    return torch.device("cuda", index)


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(flag in flags for flag in _CPU_BF16_FLAGS)
    except OSError:
        pass
    return False


def resolve_precision(precision: PrecisionChoice, device: torch.device) -> Precision:
    """"auto" -> fp16 on CUDA, bf16 on a CPU with native bf16, else fp32.

    Refuses fp16 on the CPU and bf16 on a GPU without it.
    """
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision not in _DTYPES:
        raise ValueError(f"precision {precision!r} is not one of 'auto', 'fp32', 'fp16', 'bf16', 'int8'")
    if precision == "int8":
        from dav2_ros.engines.torch_runtime.quantize import int8_available

        if device.type != "cpu":
            raise ValueError(f"precision 'int8' runs on the CPU only (got {device}); use 'fp16' on CUDA")
        if not int8_available():
            raise ValueError(f"precision 'int8' needs torch's quantized CPU engine (fbgemm/qnnpack), absent from "
                             f"torch {torch.__version__} here; use 'fp32'")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision 'fp16' needs a CUDA device (got {device}); use 'bf16' or 'fp32' on the CPU")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision 'bf16' is not supported by {torch.cuda.get_device_name(device)}; use 'fp16'")
    return precision


def torch_dtype(precision: Precision) -> torch.dtype:
    """The torch dtype of the network's tensors for a resolved precision name (float32 for "int8")."""
    return _DTYPES[precision]


# What allocation failures say when they are not torch.OutOfMemoryError: old CUDA caching-allocator and
# "CUDA error: out of memory" messages, cuBLAS workspace allocation, cuBLAS and cuDNN handle creation (handles are
# per thread and made on a thread's first call: cublasCreate reports a failed allocation as NOT_INITIALIZED), and
# the CPU allocator.
_OUT_OF_MEMORY_TEXT = ("out of memory", "cublas_status_alloc_failed", "cublas_status_not_initialized",
                       "cudnn_status_alloc_failed", "can't allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` means the device (or host) ran out of memory for this input: torch.cuda.OutOfMemoryError,
    a RuntimeError whose message says so, or MemoryError. Such a frame can be skipped and the next one tried."""
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(text in str(error).lower() for text in _OUT_OF_MEMORY_TEXT)


def release_cached_memory(device: torch.device) -> None:
    """After an out-of-memory error: hand the CUDA caching allocator's unused blocks back to the driver, so the
    next frame (and other processes on the GPU) start from a clean pool. Nothing to do on the CPU."""
    if device.type == "cuda":
        torch.cuda.empty_cache()

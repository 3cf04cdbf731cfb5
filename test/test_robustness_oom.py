"""Out of memory on one frame: recognised (torch.cuda.OutOfMemoryError, RuntimeError "out of memory",
MemoryError), reported, the CUDA cache emptied, and the next frame processed.

The CPU tests raise the real torch.cuda.OutOfMemoryError from a test double of the estimator (the
GPU failure is the only thing replaced); the real-GPU version fills the GPU from this process and is
skipped where there is no CUDA device.
"""

from __future__ import annotations

import pytest
import torch

from dav2_ros.model.device import is_out_of_memory, release_cached_memory

CUDA_OOM_TEXT = ("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 7.63 GiB of "
                 "which 1.10 GiB is free.")


@pytest.mark.parametrize("error", [
    torch.cuda.OutOfMemoryError(CUDA_OOM_TEXT),
    RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported"),
    RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 96636764160 bytes. Error code 12 (Cannot allocate memory)"),
    MemoryError(),
], ids=["torch.cuda.OutOfMemoryError", "cuda-error-text", "cublas-alloc", "cpu-allocator", "MemoryError"])
def test_out_of_memory_errors_are_recognised(error):
    assert is_out_of_memory(error)


@pytest.mark.parametrize("error", [
    RuntimeError("The size of tensor a (37) must match the size of tensor b (38) at non-singleton dimension 3"),
    RuntimeError("CUDA error: device-side assert triggered"),
    ValueError("out of memory"),  # not a runtime failure: a programming error that only mentions memory
    KeyError("pretrained.cls_token"),
], ids=["shape-mismatch", "device-assert", "ValueError", "KeyError"])
def test_other_errors_are_not_taken_for_out_of_memory(error):
    assert not is_out_of_memory(error)


def test_releasing_the_cache_is_a_no_op_on_the_cpu():
    release_cached_memory(torch.device("cpu"))  # must not touch (or need) CUDA

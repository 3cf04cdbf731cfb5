"""The PyTorch engine: the reference network in eager mode (optionally torch.compile'd), on the CPU or CUDA.

It is the only engine with tensors on the device: `DepthEstimator` hands it torch tensors (its "fast"
preprocessing and the upsampling run on the device too) and the CUDA frame path
(`engines/torch_runtime/device_frame.py`) calls `model` directly. `run` is the numpy form of the protocol, for
callers that want one.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch

from dav2_ros.model.depth_anything_v2 import DepthAnythingV2
from dav2_ros.engines.torch_runtime.device import cpu_has_native_bf16, resolve_precision, torch_dtype
from dav2_ros.engines.torch_runtime.quantize import quantize_backbone

from .base import EngineOptions

LOG = logging.getLogger("dav2_ros.model")


class TorchEngine:
    """`DepthAnythingV2` on one torch device at one precision.

    Attributes:
        model: the network (replaced by its torch.compile'd form by `dav2_ros.engines.torch_runtime.compile`).
        torch_device: the torch.device it runs on.
        dtype: the dtype of its inputs (float32 under CPU bf16 autocast and int8).
    """

    backend = "torch"

    def __init__(self, model: DepthAnythingV2, device: torch.device, precision: str) -> None:
        self.torch_device = device
        self.device = str(device)
        self.precision = precision
        # Reduced precision: on CUDA the weights are cast (fp16/bf16 kernels everywhere); on the CPU they stay fp32
        # and bf16 autocast runs the matrix products and convolutions in bf16 while LayerNorm, softmax and the
        # resampling stay fp32 -- measured more accurate than casting the weights (see benchmarks/README.md).
        self.autocast = device.type == "cpu" and precision == "bf16"
        self.dtype = torch.float32 if self.autocast else torch_dtype(precision)
        if self.autocast and not cpu_has_native_bf16():
            LOG.warning("precision bf16 on a CPU without AVX512-BF16/AMX (capability %s): bf16 is emulated here and "
                        "typically several times slower than fp32", torch.backends.cpu.get_cpu_capability())
        self.model = model.eval().requires_grad_(False).to(device=device, dtype=self.dtype)
        if precision == "int8":
            # int8 GEMMs for the ViT's qkv/proj/fc1/fc2 (46% of the FLOPs): ~2x their fp32 speed on AVX2.
            quantize_backbone(self.model)
        # The DPT head's convolutions run faster on NHWC tensors (oneDNN on the CPU, tensor cores on CUDA):
        # measured 0.73 -> 0.47 s CPU time for the vits head at 518x686 on one AVX2 core.
        self.model.depth_head.to(memory_format=torch.channels_last)

    def run_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) on the device in `dtype` -> (B, h, w) network output (in `dtype`, or float32 under autocast)."""
        with torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext():
            return self.model(x)

    @torch.inference_mode()
    def run(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.torch_device, self.dtype)
        return self.run_tensor(x).float().cpu().numpy()

    def describe(self) -> str:
        mode = {"int8": "int8 ViT Linear layers", "bf16": "bf16 autocast" if self.autocast else "bf16 weights"}
        return (f"torch {torch.__version__} on {self.device}, {mode.get(self.precision, self.precision)}, "
                f"{torch.get_num_threads()} threads" if self.torch_device.type == "cpu" else
                f"torch {torch.__version__} on {self.device}, {self.precision}")


def create_engine(model: DepthAnythingV2, device: torch.device, precision: str,
                  options: EngineOptions) -> TorchEngine:
    """The registry's factory: resolves `precision` for the device (see `torch_runtime.device.resolve_precision`)."""
    if options.num_threads > 0 and device.type == "cpu":
        import os

        torch.set_num_threads(min(options.num_threads, os.cpu_count() or options.num_threads))
    return TorchEngine(model, device, resolve_precision(precision, device))

"""Int8 dynamic quantization of the ViT's Linear layers for CPUs without fast bf16 (AVX2-only x86, ARM).

qkv, proj, fc1 and fc2 hold ~46% of Depth Anything V2's FLOPs (vits at 518x686: 77 of 167 GFLOP). Here their
weights become int8 (symmetric, one scale per output channel) once, and each call quantizes its input to uint8
(one scale per call, from the input's min/max) and runs torch's fbgemm (x86) or qnnpack (ARM) int8 GEMM with
int32 accumulation and an fp32 result. Attention (softmax(QK^T)V), LayerNorm, GELU and the DPT head's
convolutions stay fp32. The error this adds is measured against the exact mode in benchmarks/bench_pipeline.py
and test/unit/model/test_perf_quantize.py, never assumed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

#: Engines whose int8 GEMM multiplies uint8 by int8 into int16 pairs (AVX2 `vpmaddubsw`): 255 * 127 * 2
#: overflows int16, so inputs keep 7 bits (0..127), as torch's own dynamic quantization does on x86.
_REDUCED_RANGE_ENGINES = ("x86", "fbgemm", "onednn")
#: The Linear layers of a DINOv2 block, by attribute name.
BLOCK_LINEARS = ("qkv", "proj", "fc1", "fc2")


def int8_available() -> bool:
    """Whether this torch build has a CPU int8 GEMM engine (fbgemm/x86 on x86-64, qnnpack on ARM)."""
    engines = torch.backends.quantized.supported_engines
    return hasattr(torch.ops.quantized, "linear_dynamic") and any(e != "none" for e in engines)


class Int8DynamicLinear(nn.Module):
    """Drop-in for an fp32 `nn.Linear` on the CPU: int8 per-channel weights, inputs quantized on each call.

    Args:
        linear: the float layer to replace (its weight and bias are copied, the layer is not modified).

    Raises:
        RuntimeError: this torch build has no int8 engine (see `int8_available`).
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        if not int8_available():
            engines = torch.backends.quantized.supported_engines
            raise RuntimeError(f"precision 'int8' needs torch's quantized CPU engine (fbgemm/qnnpack), which torch "
                               f"{torch.__version__} lacks here (engines: {engines})")
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        weight = linear.weight.detach().float().cpu()
        bias = linear.bias.detach().float().cpu() if linear.bias is not None else None
        # Symmetric per output channel: scale = max|w_row| / 127, zero point 0 (what fbgemm wants for weights).
        scales = (weight.abs().amax(dim=1) / 127.0).clamp_min(torch.finfo(torch.float32).tiny).double()
        self.reduce_range = torch.backends.quantized.engine in _REDUCED_RANGE_ENGINES
        with warnings.catch_warnings():
            # torch 2.9+ marks quantized tensors deprecated in favour of torchao, whose CPU int8 GEMM (torch._int_mm)
            # is ~50x slower than fbgemm on AVX2; the ops used here are still torch's fastest int8 path.
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
            qweight = torch.quantize_per_channel(weight, scales, torch.zeros_like(scales, dtype=torch.int64), 0,
                                                 torch.qint8)
            self._packed = torch.ops.quantized.linear_prepack(qweight, bias)
        # The dequantized weight, kept for error analysis and tests only (not used by forward).
        self.register_buffer("dequantized_weight", qweight.dequantize(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or x.device.type != "cpu":
            raise TypeError(f"Int8DynamicLinear takes float32 CPU inputs, got {x.dtype} on {x.device}")
        return torch.ops.quantized.linear_dynamic(x, self._packed, self.reduce_range)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"engine={torch.backends.quantized.engine}, reduce_range={self.reduce_range}")


def quantize_linears(model: nn.Module, select: Callable[[str, nn.Linear], bool] | None = None) -> list[str]:
    """Replace `nn.Linear` layers of `model` (on the CPU, fp32) by `Int8DynamicLinear`, in place.

    Args:
        model: any module; only its `nn.Linear` children are touched.
        select: (qualified name, layer) -> whether to quantize it; default: every Linear.

    Returns:
        The qualified names of the replaced layers (empty if none matched).
    """
    replaced: list[str] = []
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            name = f"{parent_name}.{child_name}" if parent_name else child_name
            if type(child) is nn.Linear and (select is None or select(name, child)):
                if child.weight.device.type != "cpu":
                    raise ValueError(f"int8 quantization runs on the CPU only; {name} is on {child.weight.device}")
                setattr(parent, child_name, Int8DynamicLinear(child))
                replaced.append(name)
    return replaced


def quantize_backbone(model: nn.Module) -> list[str]:
    """Int8 for the ViT blocks' qkv, proj, fc1 and fc2 of a `DepthAnythingV2` (the patch embedding, the head's
    convolutions and everything outside the blocks stay fp32). Returns the replaced layers' names."""
    def in_block(name: str, _: nn.Linear) -> bool:
        return ".blocks." in f".{name}" and name.rsplit(".", 1)[-1] in BLOCK_LINEARS

    return quantize_linears(model, in_block)

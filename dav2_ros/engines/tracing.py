"""Tracing the torch network at one static input shape, for the engines that convert it (OpenVINO, ONNX).

The ViT's position embeddings are resized with a bicubic `F.interpolate(scale_factor=(grid + 0.1) / 37)`, as the
official code does. Exporters turn that into a resize by output *size* (OpenVINO's PyTorch frontend, ONNX Resize
with sizes), whose sampling positions differ from torch's scale-factor ones: measured 4e-4 mean and 8e-3 x max
relative error on the metric vits case. For a static shape the resized table is a constant anyway, so it is
computed here by torch itself and traced as a constant: the converted network then matches torch fp32 to ~1e-6.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch

from dav2_ros.model.config import PATCH_SIZE
from dav2_ros.model.depth_anything_v2 import DepthAnythingV2


@contextlib.contextmanager
def static_position_embeddings(model: DepthAnythingV2, shape: tuple[int, ...]) -> Iterator[DepthAnythingV2]:
    """Within the block, `model` uses the position embeddings of a (B, 3, h, w) `shape` computed now by torch (a
    constant for a tracer); restored after. Not thread-safe: the caller holds the model for the duration."""
    backbone = model.pretrained
    height, width = int(shape[-2]), int(shape[-1])
    with torch.no_grad():
        table = backbone.interpolate_pos_encoding((height // PATCH_SIZE) * (width // PATCH_SIZE), height,
                                                  width).detach().clone()

    def fixed(num_patches: int, h: int, w: int) -> torch.Tensor:
        return table

    backbone.interpolate_pos_encoding = fixed  # instance attribute: shadows the method
    try:
        yield model
    finally:
        del backbone.interpolate_pos_encoding


def trace(model: DepthAnythingV2, shape: tuple[int, ...]) -> torch.jit.ScriptModule:
    """`torch.jit.trace` of the network at `shape` (fp32, CPU) with constant position embeddings; no trace check
    (a second run that costs as much as the trace)."""
    with static_position_embeddings(model, shape), torch.inference_mode(False), torch.no_grad(), \
            warnings.catch_warnings():
        # The tracer warns about every Python-level shape check: expected, the graph is for this one shape.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.trace(model, torch.zeros(shape), check_trace=False)

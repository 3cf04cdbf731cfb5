"""LayerScale: a learned per-channel factor applied to each residual branch of a DINOv2 block.

Mirrors `depth_anything_v2/dinov2_layers/layer_scale.py` in the official code
(github.com/DepthAnything/Depth-Anything-V2).
"""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """x * gamma, with `gamma` named as in the official checkpoints.

    Args:
        dim: token width.
        init_value: initial value of every gamma entry (replaced when weights are loaded).
    """

    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma

"""The transformer block's feed-forward network: Linear -> GELU (exact) -> Linear.

Mirrors `Mlp` of `depth_anything_v2/dinov2_layers/mlp.py` in the official code
(github.com/DepthAnything/Depth-Anything-V2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Module):
    """Two-layer MLP with names (`fc1`, `fc2`) matching the official checkpoints.

    Args:
        dim: token width (input and output).
        hidden_dim: width of the hidden layer (4 x dim in DINOv2).
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))

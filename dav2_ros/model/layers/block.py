"""One pre-norm DINOv2 transformer block: x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x))).

Mirrors `NestedTensorBlock` of `depth_anything_v2/dinov2_layers/block.py` in the official code
(github.com/DepthAnything/Depth-Anything-V2) (inference only).
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import Attention
from .layer_scale import LayerScale
from .mlp import Mlp

LAYER_NORM_EPS = 1e-6


class Block(nn.Module):
    """Transformer block with LayerScale; inference only (no drop-path).

    Args:
        dim: token width.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width relative to `dim`.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))

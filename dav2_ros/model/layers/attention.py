"""Multi-head self-attention with a fused qkv projection, computed by torch's scaled_dot_product_attention.

Mirrors `MemEffAttention` of `depth_anything_v2/dinov2_layers/attention.py` in the official code
(github.com/DepthAnything/Depth-Anything-V2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """DINOv2 self-attention; parameter names (`qkv`, `proj`) match the official checkpoints.

    Args:
        dim: token width.
        num_heads: number of heads; must divide `dim`.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # softmax(q k^T / sqrt(d)) v
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))

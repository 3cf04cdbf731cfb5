"""Patch embedding: a stride-14 convolution that turns an image into a sequence of patch tokens.

Mirrors `PatchEmbed` of `depth_anything_v2/dinov2_layers/patch_embed.py` in the official code
(github.com/DepthAnything/Depth-Anything-V2).
"""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """(B, 3, H, W) image -> (B, H/p * W/p, D) tokens; H and W must be multiples of the patch size.

    Args:
        patch_size: side of a square patch in pixels.
        in_chans: image channels.
        embed_dim: token width.
    """

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"input {height}x{width} is not a multiple of the patch size {self.patch_size}")
        return self.proj(x).flatten(2).transpose(1, 2)

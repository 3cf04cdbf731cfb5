"""DINOv2 ViT backbone (ViT-S/B/L with patch 14), parameter names as in the official Depth Anything V2 checkpoints.

Mirrors `DinoVisionTransformer` of `depth_anything_v2/dinov2.py` in the official code
(github.com/DepthAnything/Depth-Anything-V2) (inference only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import PATCH_SIZE, PRETRAIN_IMAGE_SIZE, EncoderSpec
from .layers import Block, PatchEmbed
from .layers.block import LAYER_NORM_EPS

# Added to the target patch grid before computing the bicubic scale factor, as the official DINOv2 code does
# (a work-around for floating-point error, https://github.com/facebookresearch/dino/issues/8).
POS_EMBED_INTERPOLATE_OFFSET = 0.1


class DinoVisionTransformer(nn.Module):
    """The DINOv2 encoder as Depth Anything V2 uses it: class token, no register tokens, LayerScale blocks.

    Args:
        spec: the encoder table row (width, depth, heads, MLP ratio).
        patch_size: patch side in pixels.
        pretrain_image_size: the square image size the position embeddings were trained for.
    """

    def __init__(self, spec: EncoderSpec, patch_size: int = PATCH_SIZE,
                 pretrain_image_size: int = PRETRAIN_IMAGE_SIZE) -> None:
        super().__init__()
        dim = spec.embed_dim
        self.embed_dim = dim
        self.patch_size = patch_size
        self.patch_embed = PatchEmbed(patch_size, 3, dim)
        self.pretrain_grid = pretrain_image_size // patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.pretrain_grid ** 2 + 1, dim))
        # Unused at inference; kept so the official checkpoints load strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList(Block(dim, spec.num_heads, spec.mlp_ratio) for _ in range(spec.depth))
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def interpolate_pos_encoding(self, num_patches: int, height: int, width: int) -> torch.Tensor:
        """Position embeddings for a `height` x `width` input, resized exactly as the official code does.

        Bicubic (no antialias) with scale factor (grid + 0.1) / 37 per side, computed in float32, returned in
        the embedding's dtype; the stored table is returned as is for the square pretraining size.
        """
        stored = self.pos_embed.shape[1] - 1
        if num_patches == stored and height == width:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        dim = pos_embed.shape[-1]
        side = math.sqrt(stored)
        # int(): under tracing (ONNX / OpenVINO export) shapes are tensors, and interpolate takes numbers only;
        # the exported graph then holds this input size's embeddings (one static shape per input size).
        rows, cols = int(height) // self.patch_size, int(width) // self.patch_size
        grid = pos_embed[:, 1:].reshape(1, int(side), int(side), dim).permute(0, 3, 1, 2)
        grid = F.interpolate(
            grid,
            scale_factor=((rows + POS_EMBED_INTERPOLATE_OFFSET) / side, (cols + POS_EMBED_INTERPOLATE_OFFSET) / side),
            mode="bicubic",
            antialias=False,
        )
        if grid.shape[-2:] != (rows, cols):
            raise RuntimeError(f"position embedding resized to {tuple(grid.shape[-2:])}, expected {(rows, cols)}")
        grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
        return torch.cat((pos_embed[:, :1], grid), dim=1).to(self.pos_embed.dtype)

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, 3, H, W) -> tokens (B, 1 + H/14 * W/14, D) with class token and position embeddings."""
        height, width = x.shape[-2:]
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens), dim=1)
        return tokens + self.interpolate_pos_encoding(tokens.shape[1] - 1, height, width).to(tokens.dtype)

    def get_intermediate_layers(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """Normalized patch tokens (B, N, D), class token dropped, after each block in `indices` (0-based)."""
        wanted = set(indices)
        if not wanted or max(wanted) >= len(self.blocks) or min(wanted) < 0:
            raise ValueError(f"block indices {list(indices)} out of range for {len(self.blocks)} blocks")
        tokens = self.prepare_tokens(x)
        outputs = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in wanted:
                outputs.append(self.norm(tokens)[:, 1:])
                if len(outputs) == len(wanted):
                    break
        return outputs

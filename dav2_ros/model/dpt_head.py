"""The DPT head of Depth Anything V2: reassemble four ViT layers, fuse them coarse to fine, predict one channel.

Mirrors `DPTHead` and `_make_fusion_block` of `depth_anything_v2/dpt.py` and `_make_scratch` of
`depth_anything_v2/util/blocks.py` in the official code (github.com/DepthAnything/Depth-Anything-V2).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .layers import FeatureFusionBlock

HEAD_HIDDEN = 32  # width of the last hidden convolution, the same for every encoder


class DPTHead(nn.Module):
    """DPT head without class-token readout (the official `use_clstoken=False` path, as all released models use).

    Names (`projects`, `resize_layers`, `scratch.layerN_rn`, `scratch.refinenetN`, `scratch.output_conv1/2`)
    match the official checkpoints.

    Args:
        in_channels: ViT token width.
        features: width of the fusion path.
        out_channels: widths of the four reassembled maps (upsampled x4, x2, x1, downsampled x2).
        activation: the last layer's activation: "relu" (relative inverse depth) or "sigmoid" (metric, in (0, 1)).
        patch_size: ViT patch side; the output has patch_h * patch_size x patch_w * patch_size pixels.
    """

    def __init__(self, in_channels: int, features: int, out_channels: tuple[int, int, int, int],
                 activation: Literal["relu", "sigmoid"], patch_size: int = 14) -> None:
        super().__init__()
        if activation not in ("relu", "sigmoid"):
            raise ValueError(f"activation must be 'relu' or 'sigmoid', got {activation!r}")
        self.patch_size = patch_size
        self.projects = nn.ModuleList(nn.Conv2d(in_channels, c, kernel_size=1) for c in out_channels)
        c0, c1, _, c3 = out_channels
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(c0, c0, kernel_size=4, stride=4, padding=0),
            nn.ConvTranspose2d(c1, c1, kernel_size=2, stride=2, padding=0),
            nn.Identity(),
            nn.Conv2d(c3, c3, kernel_size=3, stride=2, padding=1),
        ])
        scratch = nn.Module()
        for i, c in enumerate(out_channels, start=1):
            setattr(scratch, f"layer{i}_rn", nn.Conv2d(c, features, kernel_size=3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(scratch, f"refinenet{i}", FeatureFusionBlock(features))
        scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, HEAD_HIDDEN, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(HEAD_HIDDEN, 1, kernel_size=1),
            nn.ReLU(inplace=True) if activation == "relu" else nn.Sigmoid(),
        )
        self.scratch = scratch

    def forward(self, features: list[torch.Tensor], patch_h: int, patch_w: int) -> torch.Tensor:
        """Four (B, patch_h * patch_w, C) token maps -> (B, 1, patch_h * 14, patch_w * 14) float32.

        The last activation runs in float32 whatever the network's precision: in fp16 the sigmoid is exactly 1.0
        from a logit of about 8.3 and its steps near 1 are ~5e-4 (4 cm at 80 m), so a metric head would pile
        far pixels onto max_depth; the ReLU of a relative head is exact either way."""
        maps = []
        for i, tokens in enumerate(features):
            # (B, N, C) -> (B, C, h, w) as a channels-last view (no copy); same values as the official
            # permute(0, 2, 1).reshape(B, C, h, w), and what channels-last convolutions want.
            x = tokens.reshape(tokens.shape[0], patch_h, patch_w, tokens.shape[-1]).permute(0, 3, 1, 2)
            maps.append(self.resize_layers[i](self.projects[i](x)))
        s = self.scratch
        layer1, layer2 = s.layer1_rn(maps[0]), s.layer2_rn(maps[1])
        layer3, layer4 = s.layer3_rn(maps[2]), s.layer4_rn(maps[3])
        path = s.refinenet4(layer4, size=layer3.shape[2:])
        path = s.refinenet3(path, layer3, size=layer2.shape[2:])
        path = s.refinenet2(path, layer2, size=layer1.shape[2:])
        path = s.refinenet1(path, layer1)
        out = s.output_conv1(path)
        out = F.interpolate(out, (patch_h * self.patch_size, patch_w * self.patch_size), mode="bilinear",
                            align_corners=True)
        logits = s.output_conv2[:-1](out)
        return s.output_conv2[-1](logits.float())

"""The DPT head's refinement blocks: a pre-activation residual conv unit and the feature-fusion block.

Mirrors `ResidualConvUnit` and `FeatureFusionBlock` of `depth_anything_v2/util/blocks.py` in the official code
(github.com/DepthAnything/Depth-Anything-V2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualConvUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x)))), 3x3 convolutions at constant width (official `ResidualConvUnit`, no BN).

    Args:
        features: channel count.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(x))
        out = self.conv2(F.relu(out))
        return out + x


class FeatureFusionBlock(nn.Module):
    """Fuses the coarser path with a skip feature map, refines, upsamples (bilinear, align_corners) and projects.

    `resConfUnit1` only runs when a skip input is given; refinenet4 (the coarsest) still carries its weights,
    as the official checkpoints do.

    Args:
        features: channel count of the fusion path.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1, stride=1, padding=0, bias=True)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        """Args: x: the coarser path; skip: the same-resolution feature map (or None); size: output size
        (None doubles the resolution)."""
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)

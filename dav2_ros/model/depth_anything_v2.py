"""Depth Anything V2 = DINOv2 encoder + DPT head, relative (ReLU, inverse depth) or metric (sigmoid x max_depth).

Mirrors `DepthAnythingV2` of `depth_anything_v2/dpt.py` in the official code
(github.com/DepthAnything/Depth-Anything-V2); the metric head is `metric_depth/depth_anything_v2/dpt.py`'s.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import PATCH_SIZE, ModelConfig
from .dinov2 import DinoVisionTransformer
from .dpt_head import DPTHead


class DepthAnythingV2(nn.Module):
    """The network; `state_dict()` keys and shapes are exactly the official ones (`pretrained.*`, `depth_head.*`).

    Args:
        config: encoder size, head type and metric scale.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        spec = config.spec
        self.config = config
        self.intermediate_layers = spec.intermediate_layers
        self.pretrained = DinoVisionTransformer(spec, patch_size=PATCH_SIZE)
        self.depth_head = DPTHead(spec.embed_dim, spec.features, spec.out_channels,
                                  activation="sigmoid" if config.model_type == "metric" else "relu",
                                  patch_size=PATCH_SIZE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized image (B, 3, H, W), H and W multiples of 14 -> depth (B, H, W).

        Metric: meters in (0, max_depth). Relative: non-negative affine-invariant inverse depth. Always float32:
        the head's activation and the metric scale run in float32 whatever the network's precision (in fp16,
        sigmoid x 80 m has steps of 6 cm near 80 m and saturates early; see `DPTHead.forward`).
        """
        patch_h, patch_w = x.shape[-2] // PATCH_SIZE, x.shape[-1] // PATCH_SIZE
        features = self.pretrained.get_intermediate_layers(x, self.intermediate_layers)
        depth = self.depth_head(features, patch_h, patch_w).float()
        if self.config.model_type == "metric":
            depth = depth * self.config.max_depth
        return depth.squeeze(1)

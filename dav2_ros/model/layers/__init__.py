"""DINOv2 and DPT building blocks, one small module per layer."""

from .attention import Attention
from .block import Block
from .fusion import FeatureFusionBlock, ResidualConvUnit
from .layer_scale import LayerScale
from .mlp import Mlp
from .patch_embed import PatchEmbed

__all__ = ["Attention", "Block", "FeatureFusionBlock", "LayerScale", "Mlp", "PatchEmbed", "ResidualConvUnit"]

"""The encoder table and the model configuration: every size-specific number lives here, not in the modules."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal, get_args

EncoderName = Literal["vits", "vitb", "vitl"]
ModelType = Literal["metric", "relative"]
# The training sets of the official metric checkpoints (DEFAULT_MAX_DEPTH gives each one's depth scale).
Dataset = Literal["hypersim", "vkitti"]
# The words the whole package uses for the frame and the runtime: each Literal and its tuple of values, declared
# here once (settings, command lines and the offline tools take their choices from these).
ColorOrder = Literal["rgb", "bgr"]  # channel order of a decoded uint8 frame
COLOR_ORDERS: tuple[ColorOrder, ...] = get_args(ColorOrder)
Precision = Literal["fp32", "fp16", "bf16", "int8"]  # what an engine runs, resolved
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
PrecisionChoice = Literal["auto", "fp32", "fp16", "bf16", "int8"]  # what a user asks for
PRECISION_CHOICES: tuple[PrecisionChoice, ...] = get_args(PrecisionChoice)
PreprocessMode = Literal["exact", "fast"]  # exact: the official resize on the CPU; fast: on the device
PREPROCESS_MODES: tuple[PreprocessMode, ...] = get_args(PreprocessMode)
PreprocessChoice = Literal["auto", "exact", "fast"]
PREPROCESS_CHOICES: tuple[PreprocessChoice, ...] = get_args(PreprocessChoice)

PATCH_SIZE = 14
# The DINOv2 checkpoints were trained at 518x518: 37x37 patches (+1 class token) of position embeddings.
PRETRAIN_IMAGE_SIZE = 518


def input_size_problem(value: object, bounds: tuple[int, int] | None = None) -> str | None:
    """Why `value` cannot be an ``input_size`` (the length in pixels the image's shorter side is resized to for the
    network), as a phrase that follows the name ("must be ..."), or None when it can.

    The rule: an integer (a numpy integer too; not a bool) of at least one patch, ``PATCH_SIZE``. The preprocessing
    rounds the network's sides to multiples of the patch itself (``engines.preprocess.network_size``), so any such
    integer runs. `DepthEstimator`, `ProcessingSettings` and ``dav2_infer`` take exactly this.

    Args:
        bounds: ``(low, high)``, multiples of ``PATCH_SIZE``: a caller's narrower range on top of the rule, within
            which the value must also be a multiple of ``PATCH_SIZE`` (so that it is the network's shorter side
            itself). The node's ``input_size`` parameter (and so ``bag_to_depth``) uses (70, 1540): it is declared
            to ROS as the range (70, 1540, step 14).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return f"must be an integer >= {PATCH_SIZE}"
    if bounds is None:
        return None if value >= PATCH_SIZE else f"must be an integer >= {PATCH_SIZE}"
    low, high = bounds
    if low < PATCH_SIZE or low % PATCH_SIZE or high < low:
        raise ValueError(f"input_size bounds must be multiples of {PATCH_SIZE} with low <= high, got {bounds}")
    if not low <= value <= high:
        return f"must be in [{low}, {high}]"
    if value % PATCH_SIZE:
        return f"must be a multiple of {PATCH_SIZE} (the ViT patch size)"
    return None


@dataclass(frozen=True)
class EncoderSpec:
    """One DINOv2 ViT size and the DPT head widths Depth Anything V2 pairs with it.

    Args:
        embed_dim: token width of the ViT.
        depth: number of transformer blocks.
        num_heads: attention heads per block.
        intermediate_layers: block indices whose outputs feed the DPT head (0-based).
        features: width of the DPT fusion path.
        out_channels: widths of the four reassembled feature maps.
    """

    embed_dim: int
    depth: int
    num_heads: int
    intermediate_layers: tuple[int, int, int, int]
    features: int
    out_channels: tuple[int, int, int, int]
    mlp_ratio: float = 4.0


ENCODERS: dict[str, EncoderSpec] = {
    "vits": EncoderSpec(embed_dim=384, depth=12, num_heads=6, intermediate_layers=(2, 5, 8, 11),
                        features=64, out_channels=(48, 96, 192, 384)),
    "vitb": EncoderSpec(embed_dim=768, depth=12, num_heads=12, intermediate_layers=(2, 5, 8, 11),
                        features=128, out_channels=(96, 192, 384, 768)),
    "vitl": EncoderSpec(embed_dim=1024, depth=24, num_heads=16, intermediate_layers=(4, 11, 17, 23),
                        features=256, out_channels=(256, 512, 1024, 1024)),
}

# The official metric checkpoints: Hypersim (indoor) were trained with max_depth 20, Virtual KITTI (outdoor) with 80.
DEFAULT_MAX_DEPTH = {"hypersim": 20.0, "vkitti": 80.0}


@dataclass(frozen=True)
class ModelConfig:
    """What the user chooses about the network: encoder size, head type and (metric only) the depth scale.

    Args:
        encoder: "vits", "vitb" or "vitl".
        model_type: "metric" (sigmoid head x max_depth, meters) or "relative" (ReLU head, inverse depth).
        max_depth: the metric head's scale in meters (20 for the Hypersim checkpoints, 80 for Virtual KITTI);
            ignored by the relative head.
    """

    encoder: EncoderName = "vits"
    model_type: ModelType = "metric"
    max_depth: float = 20.0

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; expected one of {sorted(ENCODERS)}")
        if self.model_type not in get_args(ModelType):
            raise ValueError(f"unknown model_type {self.model_type!r}; expected 'metric' or 'relative'")
        if not (isinstance(self.max_depth, (int, float)) and math.isfinite(self.max_depth) and self.max_depth > 0):
            raise ValueError(f"max_depth must be a positive finite number of meters, got {self.max_depth!r}")

    @property
    def spec(self) -> EncoderSpec:
        """The encoder table row for this configuration."""
        return ENCODERS[self.encoder]


def encoder_for_embed_dim(embed_dim: int) -> str | None:
    """The encoder name whose ViT width is `embed_dim`, or None if no supported encoder has it."""
    for name, spec in ENCODERS.items():
        if spec.embed_dim == embed_dim:
            return name
    return None

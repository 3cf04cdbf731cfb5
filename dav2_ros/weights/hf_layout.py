"""Hugging Face `DepthAnythingForDepthEstimation` state_dict (the `depth-anything/Depth-Anything-V2-*-hf` files)
-> the official Depth Anything V2 key layout. Handles both the hub naming (`attention.attention.query/key/value`,
`attention.output.dense`) and the transformers 5 naming (`attention.q_proj/k_proj/v_proj/o_proj`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

HF_PREFIXES = ("backbone.", "neck.", "head.")
# neck.fusion_stage.layers.j runs coarse to fine: layer 0 is the official refinenet4, layer 3 is refinenet1.
_FUSION_TO_REFINENET = {0: 4, 1: 3, 2: 2, 3: 1}
_QKV_PARTS = {"query": 0, "q_proj": 0, "key": 1, "k_proj": 1, "value": 2, "v_proj": 2}

_Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


def _rule(pattern: str, target: Callable[[re.Match[str]], str] | str) -> _Rule:
    return re.compile(pattern), (target if callable(target) else (lambda m, t=target: m.expand(t)))


def _refinenet(m: re.Match[str]) -> str:
    return f"depth_head.scratch.refinenet{_FUSION_TO_REFINENET[int(m.group(1))]}."


_RESIDUAL = {"residual_layer1": "resConfUnit1", "residual_layer2": "resConfUnit2",
             "convolution1": "conv1", "convolution2": "conv2"}

# One-to-one renames (q/k/v are merged separately). Patterns match the whole key.
_RULES: list[_Rule] = [
    _rule(r"backbone\.embeddings\.cls_token", "pretrained.cls_token"),
    _rule(r"backbone\.embeddings\.mask_token", "pretrained.mask_token"),
    _rule(r"backbone\.embeddings\.position_embeddings", "pretrained.pos_embed"),
    _rule(r"backbone\.embeddings\.patch_embeddings\.projection\.(weight|bias)", r"pretrained.patch_embed.proj.\1"),
    _rule(r"backbone\.encoder\.layer\.(\d+)\.(norm1|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)",
          r"pretrained.blocks.\1.\2.\3"),
    _rule(r"backbone\.encoder\.layer\.(\d+)\.layer_scale([12])\.lambda1", r"pretrained.blocks.\1.ls\2.gamma"),
    _rule(r"backbone\.encoder\.layer\.(\d+)\.attention\.(?:output\.dense|o_proj)\.(weight|bias)",
          r"pretrained.blocks.\1.attn.proj.\2"),
    _rule(r"backbone\.layernorm\.(weight|bias)", r"pretrained.norm.\1"),
    _rule(r"neck\.reassemble_stage\.layers\.(\d)\.projection\.(weight|bias)", r"depth_head.projects.\1.\2"),
    _rule(r"neck\.reassemble_stage\.layers\.(\d)\.resize\.(weight|bias)", r"depth_head.resize_layers.\1.\2"),
    _rule(r"neck\.convs\.(\d)\.weight", lambda m: f"depth_head.scratch.layer{int(m.group(1)) + 1}_rn.weight"),
    _rule(r"neck\.fusion_stage\.layers\.(\d)\.projection\.(weight|bias)",
          lambda m: _refinenet(m) + f"out_conv.{m.group(2)}"),
    _rule(r"neck\.fusion_stage\.layers\.(\d)\.(residual_layer[12])\.(convolution[12])\.(weight|bias)",
          lambda m: _refinenet(m) + f"{_RESIDUAL[m.group(2)]}.{_RESIDUAL[m.group(3)]}.{m.group(4)}"),
    _rule(r"head\.conv1\.(weight|bias)", r"depth_head.scratch.output_conv1.\1"),
    _rule(r"head\.conv2\.(weight|bias)", r"depth_head.scratch.output_conv2.0.\1"),
    _rule(r"head\.conv3\.(weight|bias)", r"depth_head.scratch.output_conv2.2.\1"),
]
_QKV = re.compile(r"backbone\.encoder\.layer\.(\d+)\.attention\.(?:attention\.(query|key|value)|(q_proj|k_proj|v_proj))"
                  r"\.(weight|bias)")


def is_hf_layout(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True when the keys are the Hugging Face ones (backbone./neck./head.) rather than pretrained./depth_head."""
    return any(key.startswith("backbone.") for key in state_dict) and not any(
        key.startswith("pretrained.") for key in state_dict)


def hf_to_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and merge q/k/v into qkv) a Hugging Face Depth Anything V2 state_dict into the official layout.

    Raises:
        ValueError: for keys this mapping does not know (listed) or a block with q/k/v parts missing.
    """
    official: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        match = _QKV.fullmatch(key)
        if match:
            part = _QKV_PARTS[match.group(2) or match.group(3)]
            qkv.setdefault((match.group(1), match.group(4)), {})[part] = value
            continue
        for pattern, target in _RULES:
            match = pattern.fullmatch(key)
            if match:
                official[target(match)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise ValueError(f"unrecognised Hugging Face keys: {shown}")
    for (block, kind), parts in sorted(qkv.items()):
        if sorted(parts) != [0, 1, 2]:
            raise ValueError(f"block {block}: attention {kind} has only {len(parts)} of query/key/value")
        official[f"pretrained.blocks.{block}.attn.qkv.{kind}"] = torch.cat([parts[0], parts[1], parts[2]], dim=0)
    return official

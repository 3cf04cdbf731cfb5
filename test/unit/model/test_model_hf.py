"""Hugging Face safetensors layout: converted to the official keys exactly, and checked against transformers'
own DepthAnythingForDepthEstimation (a test-only dependency) on the same weights."""

from __future__ import annotations

import functools
import pathlib

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dav2_ros.weights.checkpoint import CheckpointError, load_state_dict
from dav2_ros.model.config import ENCODERS, ModelConfig
from dav2_ros.model.depth_anything_v2 import DepthAnythingV2
from dav2_ros.engines.estimator import DepthEstimator
from dav2_ros.weights.standin_weights import reference_state_dict, reference_tensor


@functools.lru_cache(maxsize=1)
def official_vits() -> dict[str, torch.Tensor]:
    """Stand-in vits weights in the official layout (built once; callers do not modify it)."""
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in DepthAnythingV2(ModelConfig("vits", "relative")).state_dict().items()}
    return {k: torch.from_numpy(v) for k, v in reference_state_dict(shapes).items()}


def to_hub_layout(sd: dict[str, torch.Tensor], depth: int, dim: int, naming: str) -> dict[str, torch.Tensor]:
    """Official -> Hugging Face keys, written out by hand from transformers' convert_depth_anything_to_hf.py
    (independent of the package's regex converter). naming: "hub" (query/key/value, output.dense) or
    "v5" (q_proj/k_proj/v_proj/o_proj)."""
    out: dict[str, torch.Tensor] = {
        "backbone.embeddings.cls_token": sd["pretrained.cls_token"],
        "backbone.embeddings.mask_token": sd["pretrained.mask_token"],
        "backbone.embeddings.position_embeddings": sd["pretrained.pos_embed"],
        "backbone.embeddings.patch_embeddings.projection.weight": sd["pretrained.patch_embed.proj.weight"],
        "backbone.embeddings.patch_embeddings.projection.bias": sd["pretrained.patch_embed.proj.bias"],
        "backbone.layernorm.weight": sd["pretrained.norm.weight"],
        "backbone.layernorm.bias": sd["pretrained.norm.bias"],
    }
    q, k, v, o = (("attention.attention.query", "attention.attention.key", "attention.attention.value",
                   "attention.output.dense") if naming == "hub" else
                  ("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj"))
    for i in range(depth):
        src, dst = f"pretrained.blocks.{i}.", f"backbone.encoder.layer.{i}."
        for name in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                     "mlp.fc2.weight", "mlp.fc2.bias"):
            out[dst + name] = sd[src + name]
        out[dst + "layer_scale1.lambda1"] = sd[src + "ls1.gamma"]
        out[dst + "layer_scale2.lambda1"] = sd[src + "ls2.gamma"]
        for kind in ("weight", "bias"):
            qkv = sd[src + f"attn.qkv.{kind}"]
            out[f"{dst}{q}.{kind}"] = qkv[:dim].clone()
            out[f"{dst}{k}.{kind}"] = qkv[dim:2 * dim].clone()
            out[f"{dst}{v}.{kind}"] = qkv[2 * dim:].clone()
            out[f"{dst}{o}.{kind}"] = sd[src + f"attn.proj.{kind}"]
    for i in range(4):
        for kind in ("weight", "bias"):
            out[f"neck.reassemble_stage.layers.{i}.projection.{kind}"] = sd[f"depth_head.projects.{i}.{kind}"]
            if i != 2:
                out[f"neck.reassemble_stage.layers.{i}.resize.{kind}"] = sd[f"depth_head.resize_layers.{i}.{kind}"]
        out[f"neck.convs.{i}.weight"] = sd[f"depth_head.scratch.layer{i + 1}_rn.weight"]
    for refinenet, layer in ((1, 3), (2, 2), (3, 1), (4, 0)):
        src, dst = f"depth_head.scratch.refinenet{refinenet}.", f"neck.fusion_stage.layers.{layer}."
        for kind in ("weight", "bias"):
            out[f"{dst}projection.{kind}"] = sd[f"{src}out_conv.{kind}"]
            for unit in (1, 2):
                for conv in (1, 2):
                    out[f"{dst}residual_layer{unit}.convolution{conv}.{kind}"] = \
                        sd[f"{src}resConfUnit{unit}.conv{conv}.{kind}"]
    for kind in ("weight", "bias"):
        out[f"head.conv1.{kind}"] = sd[f"depth_head.scratch.output_conv1.{kind}"]
        out[f"head.conv2.{kind}"] = sd[f"depth_head.scratch.output_conv2.0.{kind}"]
        out[f"head.conv3.{kind}"] = sd[f"depth_head.scratch.output_conv2.2.{kind}"]
    return out


@pytest.mark.parametrize("naming", ["hub", "v5"])
def test_hf_safetensors_converts_to_official_keys(tmp_path: pathlib.Path, naming: str) -> None:
    official = official_vits()
    hub = to_hub_layout(official, depth=12, dim=384, naming=naming)
    assert len(hub) == len(official) + 12 * 2 * 2  # qkv (w, b) -> q, k, v
    path = tmp_path / "model.safetensors"
    save_file(hub, str(path))
    loaded = load_state_dict(path)
    assert loaded.keys() == official.keys()
    for key in official:
        assert torch.equal(loaded[key], official[key]), key


def test_official_layout_safetensors_loads(tmp_path: pathlib.Path) -> None:
    official = official_vits()
    path = tmp_path / "depth_anything_v2_vits.safetensors"
    save_file(official, str(path))
    loaded = load_state_dict(path)
    assert loaded.keys() == official.keys()


def test_unknown_hf_key_refused(tmp_path: pathlib.Path) -> None:
    hub = to_hub_layout(official_vits(), depth=12, dim=384, naming="hub")
    hub["neck.readout.weight"] = torch.zeros(3)
    path = tmp_path / "model.safetensors"
    save_file(hub, str(path))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: Hugging Face layout not understood: "
                       r"unrecognised Hugging Face keys: neck\.readout\.weight"):
        load_state_dict(path)


# ---- against transformers' own implementation -------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def hf_model(model_type: str, max_depth: int):
    """transformers' DepthAnythingForDepthEstimation for Depth-Anything-V2-Small (as in its -hf config.json),
    with stand-in values keyed by the Hugging Face names (so no mapping of ours produced them)."""
    transformers = pytest.importorskip("transformers", reason="transformers (test-only dependency) not installed")
    spec = ENCODERS["vits"]
    backbone = transformers.Dinov2Config(
        hidden_size=spec.embed_dim, num_hidden_layers=spec.depth, num_attention_heads=spec.num_heads,
        image_size=518, patch_size=14, layerscale_value=1.0, apply_layernorm=True, reshape_hidden_states=False,
        out_indices=[i + 1 for i in spec.intermediate_layers])
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=spec.embed_dim, patch_size=14,
        neck_hidden_sizes=list(spec.out_channels), fusion_hidden_size=spec.features, reassemble_factors=[4, 2, 1, 0.5],
        head_hidden_size=32, depth_estimation_type=model_type, max_depth=max_depth)
    model = transformers.DepthAnythingForDepthEstimation(config).eval()
    values = {}
    for key, tensor in model.state_dict().items():
        # Reuse the stand-in recipe; name LayerScale and the last bias as the official ones so they get
        # the same kind of values (gamma ~ 0.1, final bias ~ 1 to keep the ReLU active).
        recipe_key = key.replace("lambda1", "gamma").replace("head.conv3.bias", "head.output_conv2.2.bias")
        values[key] = torch.from_numpy(reference_tensor(recipe_key, tuple(tensor.shape)))
    model.load_state_dict(values, strict=True)
    return model


@pytest.mark.parametrize(("model_type", "max_depth"), [("relative", 1), ("metric", 20)])
def test_matches_transformers_on_its_own_safetensors(tmp_path: pathlib.Path, model_type: str, max_depth: int) -> None:
    reference = hf_model(model_type, max_depth)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))

    est = DepthEstimator.from_checkpoint(path, encoder="vits", model_type=model_type, max_depth=float(max_depth),
                                         device="cpu", precision="fp32", preprocess="exact", backend="torch")
    # Square 518x518 input: transformers resizes position embeddings by size, the official code by a
    # (n + 0.1) / 37 scale factor; the two agree only when no resize happens.
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(1, 3, 518, 518, generator=generator)
    with torch.inference_mode():
        expected = reference(pixel_values=pixels).predicted_depth
        ours = est.model(pixels)
    assert ours.shape == expected.shape == (1, 518, 518)
    scale = float(expected.abs().max())
    assert scale > 0
    diff = float((ours - expected).abs().max())
    assert diff <= 1e-4 * scale, f"max abs diff {diff:.3g}, max {scale:.3g}"
    if model_type == "metric":
        assert 0 < float(ours.min()) and float(ours.max()) < max_depth


def test_image_path_through_transformers_weights(tmp_path: pathlib.Path) -> None:
    """The full estimator (preprocess, upsample) runs on converted transformers weights."""
    reference = hf_model("relative", 1)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    est = DepthEstimator.from_checkpoint(path, encoder="vits", model_type="relative", device="cpu", precision="fp32")
    image = np.random.default_rng(0).integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    depth = est.infer(image, input_size=98)
    assert depth.shape == (60, 80) and depth.dtype == np.float32 and np.isfinite(depth).all()

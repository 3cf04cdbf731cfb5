"""The network without weights: shapes, finiteness, heads, position-embedding resize, configuration checks."""

from __future__ import annotations

import pytest
import torch

from dav2_ros.model.config import ENCODERS, ModelConfig
from dav2_ros.model.depth_anything_v2 import DepthAnythingV2
from dav2_ros.model.layers import PatchEmbed


@pytest.mark.parametrize("encoder", ["vits", "vitb", "vitl"])
def test_output_shape_and_finite_without_weights(encoder: str) -> None:
    torch.manual_seed(0)
    model = DepthAnythingV2(ModelConfig(encoder, "relative")).eval()
    x = torch.randn(2, 3, 70, 98)  # 5 x 7 patches, batch of two
    with torch.inference_mode():
        depth = model(x)
    assert depth.shape == (2, 70, 98)
    assert torch.isfinite(depth).all()
    assert (depth >= 0).all()  # ReLU head


def test_metric_head_is_bounded_by_max_depth() -> None:
    torch.manual_seed(0)
    model = DepthAnythingV2(ModelConfig("vits", "metric", max_depth=7.5)).eval()
    with torch.inference_mode():
        depth = model(torch.randn(1, 3, 56, 84))
    assert depth.shape == (1, 56, 84)
    assert (depth > 0).all() and (depth < 7.5).all()


def test_metric_is_sigmoid_times_max_depth_of_the_same_features() -> None:
    """Same weights: the metric output is sigmoid(last conv) * max_depth, the relative one relu(last conv)."""
    torch.manual_seed(0)
    relative = DepthAnythingV2(ModelConfig("vits", "relative")).eval()
    last_conv = relative.depth_head.scratch.output_conv2[2]
    logits = {}
    # The hook returns None (so it does not replace the output) and keeps a copy before the in-place ReLU.
    last_conv.register_forward_hook(lambda m, i, o: logits.__setitem__("z", o.clone()))
    x = torch.randn(1, 3, 42, 56)
    with torch.inference_mode():
        relative(x)
        last_conv.bias -= logits["z"].median()  # centre the logits so both signs occur
    metric = DepthAnythingV2(ModelConfig("vits", "metric", max_depth=20.0)).eval()
    metric.load_state_dict(relative.state_dict(), strict=True)
    with torch.inference_mode():
        rel, met = relative(x), metric(x)
    z = logits["z"].squeeze(1)
    assert (z > 0).any() and (z < 0).any()
    torch.testing.assert_close(rel, torch.relu(z))
    torch.testing.assert_close(met, torch.sigmoid(z) * 20.0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_head_activates_and_scales_in_float32(dtype: torch.dtype) -> None:
    """A network cast to bf16/fp16 (as on CUDA): its logits come in that dtype, the sigmoid and x max_depth run in
    float32. In fp16/bf16 sigmoid is exactly 1.0 from a logit of ~8.3 (bf16: ~5.5) and sigmoid x 80 m moves in
    steps of 6 cm (bf16: 50 cm), so distinct far depths would collapse onto max_depth."""
    torch.manual_seed(0)
    model = DepthAnythingV2(ModelConfig("vits", "metric", max_depth=80.0)).eval()
    last_conv = model.depth_head.scratch.output_conv2[2]
    x = torch.randn(1, 3, 42, 56)
    logits = {}
    last_conv.register_forward_hook(lambda m, i, o: logits.__setitem__("z", o.clone()))
    with torch.inference_mode():
        model(x)
        last_conv.bias -= logits["z"].median() - 9.0  # logits around 9: where a reduced-precision sigmoid saturates
    model = model.to(dtype)
    try:
        with torch.inference_mode():
            depth = model(x.to(dtype))
    except RuntimeError as error:  # a CPU build without this dtype's convolutions
        pytest.skip(f"torch on this CPU cannot run a {dtype} network: {error}")
    z = logits["z"].squeeze(1)
    assert z.dtype == dtype and depth.dtype == torch.float32
    torch.testing.assert_close(depth, torch.sigmoid(z.float()) * 80.0, rtol=0, atol=0)
    assert (depth < 80.0).all()  # in the reduced dtype most of these pixels would sit exactly on 80 m
    assert (torch.sigmoid(z) * 80.0 == 80.0).float().mean() > 0.3


def test_position_embedding_kept_at_pretraining_size_and_resized_otherwise() -> None:
    model = DepthAnythingV2(ModelConfig("vits", "relative")).pretrained
    assert model.interpolate_pos_encoding(37 * 37, 518, 518) is model.pos_embed
    resized = model.interpolate_pos_encoding(37 * 49, 518, 686)
    assert resized.shape == (1, 1 + 37 * 49, 384)
    torch.testing.assert_close(resized[:, :1], model.pos_embed[:, :1])  # class token position untouched
    # Only one side differs from 37: still resized (with the 0.1 offset), not returned as is.
    assert model.interpolate_pos_encoding(37 * 22, 518, 308).shape == (1, 1 + 37 * 22, 384)


def test_position_embedding_uses_offset_scale_factor() -> None:
    """(n + 0.1) / 37 scale factor, bicubic, no antialias -- not a resize to an explicit size."""
    model = DepthAnythingV2(ModelConfig("vits", "relative")).pretrained
    grid = model.pos_embed[:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    by_factor = torch.nn.functional.interpolate(grid, scale_factor=(22.1 / 37, 29.1 / 37), mode="bicubic",
                                                antialias=False)
    by_size = torch.nn.functional.interpolate(grid, size=(22, 29), mode="bicubic", antialias=False)
    ours = model.interpolate_pos_encoding(22 * 29, 308, 406)[:, 1:].reshape(1, 22, 29, 384).permute(0, 3, 1, 2)
    torch.testing.assert_close(ours, by_factor)
    assert not torch.allclose(ours, by_size)


def test_intermediate_layers_follow_encoder_table() -> None:
    for name, spec in ENCODERS.items():
        with torch.device("meta"):
            model = DepthAnythingV2(ModelConfig(name, "relative"))
        assert model.intermediate_layers == spec.intermediate_layers
        assert len(model.pretrained.blocks) == spec.depth
        assert model.depth_head.scratch.refinenet1.out_conv.out_channels == spec.features
    assert ENCODERS["vitl"].intermediate_layers == (4, 11, 17, 23)
    assert ENCODERS["vitb"].out_channels == (96, 192, 384, 768)


def test_patch_embed_refuses_non_multiple_of_patch() -> None:
    with pytest.raises(ValueError, match="not a multiple of the patch size 14"):
        PatchEmbed(14, 3, 8)(torch.zeros(1, 3, 28, 30))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"encoder": "vitg"}, "unknown encoder 'vitg'"),
    ({"model_type": "absolute"}, "unknown model_type 'absolute'"),
    ({"max_depth": 0.0}, "max_depth must be a positive"),
    ({"max_depth": float("nan")}, "max_depth must be a positive"),
])
def test_model_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)

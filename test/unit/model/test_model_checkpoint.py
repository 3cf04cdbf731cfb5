"""Checkpoint loading: official keys load strictly; wrong encoder, truncated, code-carrying, missing files refused."""

from __future__ import annotations

import logging
import os
import pathlib

import pytest
import torch

from dav2_ros.weights.checkpoint import (CheckpointError, CheckpointNotFoundError, detect_encoder, load_state_dict,
                                         name_warnings)
from dav2_ros.model.config import ModelConfig
from dav2_ros.model.depth_anything_v2 import DepthAnythingV2
from dav2_ros.engines.estimator import DepthEstimator
from dav2_ros.weights.standin_weights import reference_state_dict


def official_shapes(encoder: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of our model's state_dict, built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        model = DepthAnythingV2(ModelConfig(encoder, "relative"))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def vits_state_dict() -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in reference_state_dict(official_shapes("vits")).items()}


@pytest.fixture(scope="module")
def vits_pth(tmp_path_factory: pytest.TempPathFactory, vits_state_dict: dict) -> pathlib.Path:
    path = tmp_path_factory.mktemp("ckpt") / "depth_anything_v2_vits.pth"
    torch.save(vits_state_dict, path)
    return path


# A few keys and shapes straight from the official depth_anything_v2_vits.pth.
OFFICIAL_VITS_SAMPLES = {
    "pretrained.cls_token": (1, 1, 384),
    "pretrained.pos_embed": (1, 1370, 384),
    "pretrained.mask_token": (1, 384),
    "pretrained.patch_embed.proj.weight": (384, 3, 14, 14),
    "pretrained.blocks.11.attn.qkv.weight": (1152, 384),
    "pretrained.blocks.0.ls1.gamma": (384,),
    "pretrained.norm.bias": (384,),
    "depth_head.projects.0.weight": (48, 384, 1, 1),
    "depth_head.resize_layers.0.weight": (48, 48, 4, 4),
    "depth_head.resize_layers.3.weight": (384, 384, 3, 3),
    "depth_head.scratch.layer4_rn.weight": (64, 384, 3, 3),
    "depth_head.scratch.refinenet4.resConfUnit1.conv1.weight": (64, 64, 3, 3),
    "depth_head.scratch.refinenet1.out_conv.weight": (64, 64, 1, 1),
    "depth_head.scratch.output_conv1.weight": (32, 64, 3, 3),
    "depth_head.scratch.output_conv2.0.weight": (32, 32, 3, 3),
    "depth_head.scratch.output_conv2.2.bias": (1,),
}


def test_official_key_set_vits() -> None:
    shapes = official_shapes("vits")
    assert len(shapes) == 239
    for key, shape in OFFICIAL_VITS_SAMPLES.items():
        assert shapes[key] == shape, key
    assert all(k.startswith(("pretrained.", "depth_head.")) for k in shapes)
    assert not any("readout" in k or "stem_transpose" in k for k in shapes)


@pytest.mark.parametrize(("encoder", "count", "dim", "blocks"), [("vitb", 239, 768, 12), ("vitl", 407, 1024, 24)])
def test_official_key_set_larger(encoder: str, count: int, dim: int, blocks: int) -> None:
    shapes = official_shapes(encoder)
    assert len(shapes) == count
    assert shapes["pretrained.cls_token"] == (1, 1, dim)
    assert f"pretrained.blocks.{blocks - 1}.mlp.fc2.weight" in shapes
    assert f"pretrained.blocks.{blocks}.mlp.fc2.weight" not in shapes


def test_metric_and_relative_have_identical_keys() -> None:
    with torch.device("meta"):
        metric = DepthAnythingV2(ModelConfig("vits", "metric")).state_dict()
    assert {k: tuple(v.shape) for k, v in metric.items()} == official_shapes("vits")


def test_pth_loads_strictly(vits_pth: pathlib.Path, vits_state_dict: dict) -> None:
    loaded = load_state_dict(vits_pth)
    assert loaded.keys() == vits_state_dict.keys()
    assert all(torch.equal(loaded[k], vits_state_dict[k]) for k in loaded)
    assert detect_encoder(loaded) == ("vits", 384)
    model = DepthAnythingV2(ModelConfig("vits", "relative"))
    assert not model.load_state_dict(loaded, strict=True).missing_keys


def test_training_checkpoint_is_unwrapped(tmp_path: pathlib.Path, vits_state_dict: dict) -> None:
    path = tmp_path / "latest.pth"
    torch.save({"model": {f"module.{k}": v for k, v in vits_state_dict.items()}, "epoch": 3}, path)
    loaded = load_state_dict(path)
    assert loaded.keys() == vits_state_dict.keys()


def test_wrong_encoder_vits_file_vitb_parameter(vits_pth: pathlib.Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint is vits \(embed dim 384\), encoder parameter is vitb"):
        DepthEstimator.from_checkpoint(vits_pth, encoder="vitb", model_type="relative", device="cpu")


def test_wrong_encoder_vitb_file_vits_parameter(tmp_path: pathlib.Path) -> None:
    # A full vitb-shaped file (zeros, fp16 to keep it small): the shapes alone say which encoder it is.
    path = tmp_path / "depth_anything_v2_vitb.pth"
    torch.save({k: torch.zeros(s, dtype=torch.float16) for k, s in official_shapes("vitb").items()}, path)
    with pytest.raises(CheckpointError) as info:
        DepthEstimator.from_checkpoint(path, encoder="vits", model_type="relative", device="cpu")
    assert "checkpoint is vitb (embed dim 768), encoder parameter is vits" in str(info.value)
    assert str(path) in str(info.value)


def test_missing_key_refused(tmp_path: pathlib.Path, vits_state_dict: dict) -> None:
    partial = dict(vits_state_dict)
    del partial["depth_head.scratch.output_conv2.2.weight"]
    with pytest.raises(CheckpointError, match=r"Missing key.*output_conv2\.2\.weight"):
        DepthEstimator.from_state_dict(partial, encoder="vits", model_type="relative", device="cpu")


@pytest.mark.parametrize("fraction", [0.5, 0.999])
def test_truncated_pth(tmp_path: pathlib.Path, vits_pth: pathlib.Path, fraction: float) -> None:
    data = vits_pth.read_bytes()
    path = tmp_path / "depth_anything_v2_vits.pth"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError) as info:
        load_state_dict(path)
    message = str(info.value)
    assert str(path) in message and "corrupt or truncated" in message
    assert "\n" not in message


def test_truncated_safetensors(tmp_path: pathlib.Path, vits_state_dict: dict) -> None:
    from safetensors.torch import save_file

    full = tmp_path / "full.safetensors"
    save_file(vits_state_dict, str(full))
    path = tmp_path / "model.safetensors"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt or truncated"):
        load_state_dict(path)


def test_garbage_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "weights.pth"
    path.write_text("<html>404 Not Found</html>")
    with pytest.raises(CheckpointError, match=r"weights\.pth is corrupt or truncated"):
        load_state_dict(path)


class RunsShellOnLoad:
    """An object whose unpickling runs a shell command: what a malicious checkpoint would carry."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_is_refused(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "depth_anything_v2_vits.pth"
    torch.save({"pretrained.cls_token": torch.zeros(1, 1, 384), "payload": RunsShellOnLoad(marker)}, path)
    with pytest.raises(CheckpointError) as info:
        load_state_dict(path)
    message = str(info.value)
    assert "refused" in message and "weights_only" in message and str(path) in message
    assert not marker.exists(), "the pickled code ran"


def test_non_tensor_entries_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "odd.pth"
    torch.save({"pretrained.cls_token": torch.zeros(1, 1, 384), "pretrained.note": "hello"}, path)
    with pytest.raises(CheckpointError, match=r"non-tensor entries: pretrained\.note"):
        load_state_dict(path)


def test_not_a_depth_anything_state_dict(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3)}, path)
    with pytest.raises(CheckpointError, match=r"not a Depth Anything V2 state_dict.*conv1\.weight"):
        load_state_dict(path)


def test_missing_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nowhere" / "depth_anything_v2_vits.pth"
    with pytest.raises(CheckpointNotFoundError) as info:
        DepthEstimator.from_checkpoint(path, encoder="vits", model_type="relative", device="cpu")
    assert str(path) in str(info.value) and "not found" in str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, CheckpointError)


def test_name_contradicting_model_type_warns(tmp_path: pathlib.Path, vits_pth: pathlib.Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    metric_named = tmp_path / "depth_anything_v2_metric_hypersim_vits.pth"
    metric_named.symlink_to(vits_pth)
    with caplog.at_level(logging.WARNING, logger="dav2_ros.model"):
        est = DepthEstimator.from_checkpoint(metric_named, encoder="vits", model_type="relative", device="cpu")
    assert est.config.model_type == "relative"  # the user's choice stands
    assert any(r.name == "dav2_ros.model" and "looks like a metric model" in r.getMessage() for r in caplog.records)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dav2_ros.model"):
        DepthEstimator.from_checkpoint(vits_pth, encoder="vits", model_type="metric", device="cpu")
    assert any("looks like a relative" in r.getMessage() for r in caplog.records)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dav2_ros.model"):
        DepthEstimator.from_checkpoint(vits_pth, encoder="vits", model_type="relative", device="cpu")
    assert not caplog.records


def test_name_warnings_for_metric_scale() -> None:
    assert name_warnings("depth_anything_v2_metric_hypersim_vits.pth", "metric", 20.0) == []
    assert name_warnings("depth_anything_v2_metric_vkitti_vitb.pth", "metric", 80.0) == []
    [warning] = name_warnings("depth_anything_v2_metric_vkitti_vits.pth", "metric", 20.0)
    assert "max_depth 80" in warning and "max_depth is 20" in warning
    assert name_warnings("my_finetune.pth", "metric", 10.0) == []

"""Loading Depth Anything V2 weights from disk: official .pth (weights_only) or Hugging Face .safetensors,
and checking that they fit the encoder and model type the user chose."""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from dav2_ros.model.config import DEFAULT_MAX_DEPTH, ENCODERS, ModelConfig, encoder_for_embed_dim
from dav2_ros.model.depth_anything_v2 import DepthAnythingV2
from dav2_ros.weights.hf_layout import hf_to_official, is_hf_layout

LOG = logging.getLogger("dav2_ros.model")

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: one-line message naming the file and the cause."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist (also a FileNotFoundError)."""


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint into a CPU state_dict in the official layout (`pretrained.*`, `depth_head.*`).

    `.pth`/`.pt` go through `torch.load(weights_only=True)` (no code in the file can run); `.safetensors` may be
    in the Hugging Face layout and is converted. Training checkpoints ({'model': state_dict, ...}) and DDP
    `module.` prefixes are unwrapped.

    Raises:
        CheckpointNotFoundError: the file does not exist.
        CheckpointError: unreadable, truncated, not plain tensors, or an unknown layout.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    if path.suffix.lower() == SAFETENSORS_SUFFIX:
        state_dict = _read_safetensors(path)
    else:
        state_dict = _read_torch(path)
    if is_hf_layout(state_dict):
        try:
            state_dict = hf_to_official(state_dict)
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {path}: Hugging Face layout not understood: {exc}") from None
    if not any(key.startswith("pretrained.") for key in state_dict):
        shown = ", ".join(list(state_dict)[:3])
        raise CheckpointError(f"checkpoint {path} is not a Depth Anything V2 state_dict "
                              f"(no 'pretrained.*' keys; first keys: {shown or 'none'})")
    return state_dict


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    """torch.load with weights_only=True, turning every failure into a CheckpointError naming the file."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(str(exc))
        if re.search(r"\bglobal\b", str(exc), re.IGNORECASE):
            raise CheckpointError(
                f"refused to load checkpoint {path}: it holds more than tensors (objects or code) and "
                f"torch.load(weights_only=True) rejected it ({detail})") from None
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (unpickling failed: {detail})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({detail})") from None
    return _unwrap(obj, path)


def _unpickler_detail(message: str) -> str:
    """The informative line of torch's weights_only error (it wraps it in boilerplate about torch 2.6)."""
    boilerplate = ("weights only load failed", "check the documentation", "please file an issue", "re-running")
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if not line.lower().startswith(boilerplate)]
    return (useful or lines or ["no detail"])[0]


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """safetensors.torch.load_file, with failures turned into a CheckpointError naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (safetensors: {exc})") from None


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """A plain state_dict from what torch.load returned: unwrap {'model': ...}/{'state_dict': ...}, drop 'module.'."""
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for wrapper in ("model", "state_dict"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a state_dict")
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path} has non-tensor entries: {', '.join(bad[:5])}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def detect_encoder(state_dict: Mapping[str, torch.Tensor]) -> tuple[str | None, int]:
    """(encoder name or None, embed dim) read from the shapes of an official-layout state_dict."""
    cls_token = state_dict.get("pretrained.cls_token")
    if cls_token is None:
        raise CheckpointError("state_dict has no 'pretrained.cls_token': not a Depth Anything V2 checkpoint")
    embed_dim = int(cls_token.shape[-1])
    return encoder_for_embed_dim(embed_dim), embed_dim


def check_encoder(state_dict: Mapping[str, torch.Tensor], encoder: str, source: str) -> None:
    """Refuse a state_dict whose shapes say another encoder than the one asked for, saying which it is."""
    found, embed_dim = detect_encoder(state_dict)
    if found is None:
        raise CheckpointError(f"{source}: checkpoint has embed dim {embed_dim}, which is none of the supported "
                              f"encoders ({', '.join(f'{n}: {s.embed_dim}' for n, s in ENCODERS.items())})")
    if found != encoder:
        raise CheckpointError(
            f"{source}: checkpoint is {found} (embed dim {embed_dim}), encoder parameter is {encoder}")


def network_with_weights(state_dict: Mapping[str, torch.Tensor], config: ModelConfig, source: str) -> DepthAnythingV2:
    """The network of `config` holding these weights in fp32 (assigned, not copied, where already fp32), after
    `check_encoder`; CheckpointError naming `source` when keys or shapes do not fit."""
    check_encoder(state_dict, config.encoder, source)
    with torch.device("meta"):
        network = DepthAnythingV2(config)
    weights = {k: (v.float() if v.is_floating_point() else v) for k, v in state_dict.items()}
    try:
        network.load_state_dict(weights, strict=True, assign=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        raise CheckpointError(f"{source}: does not fit Depth Anything V2 {config.encoder}: "
                              f"{'; '.join(lines)[:500]}") from None
    return network


_OFFICIAL_RELATIVE_NAME = re.compile(r"depth_anything_v2_vit[sblg]\.|depth-anything-v2-(small|base|large)-hf",
                                     re.IGNORECASE)


def name_warnings(path: str | Path, model_type: str, max_depth: float) -> list[str]:
    """Warnings when the file name contradicts the chosen model type or metric scale (the choice still stands).

    The model type is never taken from the name: metric and relative checkpoints have identical keys.
    """
    path = Path(path)
    name = f"{path.parent.name}/{path.name}".lower()
    warnings = []
    if "metric" in name and model_type == "relative":
        warnings.append(f"checkpoint {path.name!r} looks like a metric model, but model_type is 'relative'")
    if "metric" not in name and _OFFICIAL_RELATIVE_NAME.search(name) and model_type == "metric":
        warnings.append(f"checkpoint {path.name!r} looks like a relative (affine-invariant) model, "
                        f"but model_type is 'metric': the output will not be meters")
    if model_type == "metric":
        indoor, outdoor = DEFAULT_MAX_DEPTH["hypersim"], DEFAULT_MAX_DEPTH["vkitti"]
        for marker, trained in (("hypersim", indoor), ("indoor", indoor), ("vkitti", outdoor), ("outdoor", outdoor)):
            if marker in name and max_depth != trained:
                warnings.append(f"checkpoint {path.name!r} looks like a {marker} model (trained with max_depth "
                                f"{trained:g}), but max_depth is {max_depth:g}: depths will be scaled wrongly")
                break
    return warnings


def warn_about_name(path: str | Path, model_type: str, max_depth: float) -> None:
    """Log `name_warnings` on the "dav2_ros.model" logger."""
    for message in name_warnings(path, model_type, max_depth):
        LOG.warning(message)

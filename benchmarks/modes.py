"""The inference modes the benchmarks compare, each built as an object `FrameProcessor` can drive.

* this project's `DepthEstimator` with backend torch in exact-fp32, exact-bf16 (torch's CPU default before the
  engines), fast-fp32, fast-bf16 and fast-int8 (int8 dynamic quantization of the ViT Linear layers), with backend
  openvino in fp32, bf16 and int8 (NNCF int8 weights), and "default": what the node gets with nothing chosen;
* transformers' `DepthAnythingForDepthEstimation` + its image processor (`DPTImageProcessorPil`, the class
  transformers 5 maps "depth_anything" to without torchvision, configured like the hub's
  `Depth-Anything-V2-*-hf/preprocessor_config.json`), holding the same stand-in weights, wrapped in
  `TransformersEstimator` so that it goes through exactly the same decode / cloud / publish code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from dav2_ros.model.config import ENCODERS
from dav2_ros.engines.estimator import DepthEstimator

Mode = Literal["default", "exact-fp32", "exact-bf16", "fast-fp32", "fast-bf16", "fast-int8", "openvino-fp32",
               "openvino-bf16", "openvino-int8", "transformers-fp32"]
MODES: tuple[str, ...] = ("default", "exact-fp32", "exact-bf16", "fast-fp32", "fast-bf16", "fast-int8",
                          "openvino-fp32", "openvino-bf16", "openvino-int8", "transformers-fp32")
#: The modes that go through this project's estimator: (backend, preprocess, precision). "default" is what the node
#: and `DepthEstimator.from_state_dict(..., device="cpu")` get with nothing chosen (backend auto: OpenVINO on the
#: CPU); "exact-bf16" is torch's CPU default before the engines (exact preprocessing, bf16 autocast where native).
ESTIMATOR_MODES: dict[str, tuple[str, str, str]] = {
    "default": ("auto", "auto", "auto"),
    "exact-fp32": ("torch", "exact", "fp32"), "exact-bf16": ("torch", "exact", "auto"),
    "fast-fp32": ("torch", "fast", "fp32"), "fast-bf16": ("torch", "fast", "bf16"),
    "fast-int8": ("torch", "fast", "int8"),
    "openvino-fp32": ("openvino", "exact", "fp32"), "openvino-bf16": ("openvino", "exact", "bf16"),
    "openvino-int8": ("openvino", "exact", "int8"),
}
#: Which GEMM dtype bounds each mode (flops.MODE_DTYPES keys).
MODE_DTYPE = {"default": "bf16", "exact-fp32": "fp32", "exact-bf16": "bf16", "fast-fp32": "fp32", "fast-bf16": "bf16",
              "fast-int8": "int8", "openvino-fp32": "fp32", "openvino-bf16": "bf16", "openvino-int8": "bf16",
              "transformers-fp32": "fp32"}


def build_estimator(mode: str, encoder: str, max_depth: float = 20.0, seed: int = 0):
    """The estimator (or transformers adapter) for a mode, with the parity fixtures' stand-in weights (seed 0)."""
    if mode == "transformers-fp32":
        reference = DepthEstimator.random(encoder=encoder, model_type="metric", max_depth=max_depth, device="cpu",
                                          precision="fp32", preprocess="exact", seed=seed, backend="torch")
        return TransformersEstimator(reference.model, encoder, max_depth)
    backend, preprocess, precision = ESTIMATOR_MODES[mode]
    return DepthEstimator.random(encoder=encoder, model_type="metric", max_depth=max_depth, device="cpu",
                                 precision=precision, preprocess=preprocess, seed=seed, backend=backend)


@dataclass(frozen=True)
class _Config:
    model_type: str
    max_depth: float


class TransformersEstimator:
    """transformers' Depth Anything V2 behind the pipeline's `Estimator` protocol (`infer`, `last_timings`, `config`,
    `device`, `backend`; no on-device frame path).

    preprocess = the image processor (PIL bicubic resize, keep aspect, multiple of 14, rescale, normalize),
    inference = the model's forward, postprocess = `post_process_depth_estimation` (bicubic upsample to the
    frame) and the copy to numpy -- the same three phases as `DepthEstimator.last_timings`.
    """

    def __init__(self, official_model: torch.nn.Module, encoder: str, max_depth: float) -> None:
        import transformers

        self.version = transformers.__version__
        self.config = _Config("metric", max_depth)
        self.model = hf_model(official_model, encoder, max_depth)
        self.processor = transformers.DPTImageProcessorPil(
            do_resize=True, size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
            resample=3, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
            image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], do_pad=False)
        self.last_timings = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}

    device = torch.device("cpu")
    backend = "transformers"

    def device_frame_path(self, **options: object) -> None:
        """The protocol's factory: transformers' model runs on the host path only."""
        raise ValueError("transformers' model has no on-device frame path")

    def infer(self, image: np.ndarray, input_size: int = 518, color_order: str = "rgb") -> np.ndarray:
        """Depth (meters) at the image's size, the transformers way."""
        start = time.perf_counter()
        rgb = image[..., ::-1] if color_order == "bgr" else image
        inputs = self.processor(images=np.ascontiguousarray(rgb), size={"height": input_size, "width": input_size},
                                return_tensors="pt")
        prepared = time.perf_counter()
        with torch.inference_mode():
            outputs = self.model(pixel_values=inputs["pixel_values"])
        inferred = time.perf_counter()
        with torch.inference_mode():
            depth = self.processor.post_process_depth_estimation(outputs, target_sizes=[image.shape[:2]])
        out = depth[0]["predicted_depth"].float().numpy()
        done = time.perf_counter()
        self.last_timings = {"preprocess": prepared - start, "inference": inferred - prepared,
                             "postprocess": done - inferred}
        return out


def hf_model(official_model: torch.nn.Module, encoder: str, max_depth: float) -> torch.nn.Module:
    """transformers' DepthAnythingForDepthEstimation (metric head) for `encoder`, holding `official_model`'s
    weights (so its output can be compared with ours, not only its speed). `max_depth` must be whole meters."""
    if max_depth != int(max_depth):
        raise ValueError(f"transformers takes an integer max_depth, got {max_depth}")
    import transformers

    spec = ENCODERS[encoder]
    backbone = transformers.Dinov2Config(
        hidden_size=spec.embed_dim, num_hidden_layers=spec.depth, num_attention_heads=spec.num_heads,
        mlp_ratio=int(spec.mlp_ratio), image_size=518, patch_size=14,
        out_indices=[i + 1 for i in spec.intermediate_layers], apply_layernorm=True, reshape_hidden_states=False)
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=spec.embed_dim, patch_size=14,
        neck_hidden_sizes=list(spec.out_channels), fusion_hidden_size=spec.features,
        depth_estimation_type="metric", max_depth=int(max_depth))  # transformers types it int
    model = transformers.DepthAnythingForDepthEstimation(config).eval()
    model.load_state_dict(official_to_hf(official_model.state_dict(), list(model.state_dict())), strict=True)
    return model.requires_grad_(False)


def official_to_hf(official: dict[str, torch.Tensor], hf_keys: list[str]) -> dict[str, torch.Tensor]:
    """Official weights under transformers' names: the package's `hf_to_official` run backwards by probing it with
    one numbered scalar per transformers key (q/k/v come back as the three row blocks of a merged qkv)."""
    from dav2_ros.weights.hf_layout import hf_to_official

    probe = {key: torch.tensor([float(i)]) for i, key in enumerate(hf_keys)}
    values = {}
    for official_key, numbers in hf_to_official(probe).items():
        parts = official[official_key].chunk(len(numbers), dim=0) if len(numbers) > 1 else [official[official_key]]
        for part, number in zip(parts, numbers.tolist()):
            values[hf_keys[int(number)]] = part.clone()
    return values

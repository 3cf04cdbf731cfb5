"""DepthEstimator: the public, ROS-free API -- uint8 image in, float32 depth at the image's size out."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from dav2_ros.weights.checkpoint import load_state_dict, network_with_weights, warn_about_name
from dav2_ros.model.config import (PREPROCESS_MODES, EncoderName, ModelConfig, ModelType, PreprocessChoice,
                                   input_size_problem)
from dav2_ros.model.depth_anything_v2 import DepthAnythingV2
from dav2_ros.engines.base import Engine, EngineOptions
from dav2_ros.engines.registry import ENGINES, create_engine, resolve_backend
from dav2_ros.engines.torch_engine import TorchEngine

from dav2_ros.engines.torch_runtime.device import Precision, PrecisionChoice, resolve_device, resolve_precision
from dav2_ros.engines.torch_runtime.device_frame import DeviceFramePath, GraphCapture
from dav2_ros.engines.preprocess import (ColorOrder, FastPreprocessor, PreprocessMode, check_color_order,
                                         check_image, exact_preprocess)
from dav2_ros.weights.standin_weights import reference_state_dict

LOG = logging.getLogger("dav2_ros.model")

BackendChoice = Literal["auto", "torch", "openvino", "onnxruntime"]
TIMING_KEYS = ("preprocess", "inference", "postprocess")


def resolve_preprocess(preprocess: PreprocessChoice, device: torch.device) -> PreprocessMode:
    """"auto" -> "fast" on CUDA, "exact" on the CPU (where exact costs little and matches the official output)."""
    if preprocess == "auto":
        return "fast" if device.type == "cuda" else "exact"
    if preprocess not in PREPROCESS_MODES:
        raise ValueError(f"preprocess {preprocess!r} is not one of 'auto', 'exact', 'fast'")
    return preprocess


class DepthEstimator:
    """Depth Anything V2 on one engine, device and precision; not thread-safe (use it from one worker thread).

    Build it with `from_checkpoint`, `from_state_dict` or `random`; call `infer` per image. Every engine
    (`dav2_ros.engines`) gets the same preprocessed batch and its output is upsampled here the same way.

    Attributes:
        config: encoder, model type and max_depth.
        backend: the engine that runs the network: "torch", "openvino", "onnxruntime".
        backend_reason: why that engine (what `auto` found, or "asked for").
        engine: the engine itself (`dav2_ros.engines.base.Engine`).
        device: the torch device of the preprocessing/upsampling tensors: the network's device for backend torch,
            the CPU for the others.
        precision: "fp32", "fp16", "bf16" or "int8", as the engine resolved it.
        preprocess: "exact" (the official numpy/cv2 float64 pipeline) or "fast" (on the device).
        last_timings: seconds spent in "preprocess", "inference", "postprocess" by the last call.
    """

    def __init__(self, engine: Engine, config: ModelConfig, *, preprocess: PreprocessMode,
                 backend_reason: str = "") -> None:
        self.config: ModelConfig = config
        self.engine = engine
        self.backend: str = engine.backend
        self.backend_reason = backend_reason or engine.backend
        self._torch = engine if isinstance(engine, TorchEngine) else None
        # Where the preprocessing and upsampling tensors live: the torch engine's device, the host for the others.
        self.device = self._torch.torch_device if self._torch is not None else torch.device("cpu")
        self.precision: Precision = engine.precision  # type: ignore[assignment]
        self.preprocess: PreprocessMode = preprocess
        self._fast = FastPreprocessor(self.device) if preprocess == "fast" else None
        self.last_timings: dict[str, float] = dict.fromkeys(TIMING_KEYS, 0.0)

    @property
    def model(self) -> DepthAnythingV2:
        """The torch network that runs (backend torch; `model.compile` may replace it), for the device path."""
        if self._torch is None:
            raise AttributeError(f"the {self.backend} engine runs no torch module (estimator.model is backend torch's)")
        return self._torch.model

    @model.setter
    def model(self, module: DepthAnythingV2) -> None:
        if self._torch is None:
            raise AttributeError(f"the {self.backend} engine runs no torch module")
        self._torch.model = module

    def describe_engine(self) -> str:
        """One line: which engine runs, how, and why it was picked (the start-up log says it)."""
        return f"{self.engine.describe()} [{self.backend_reason}]"

    def device_frame_path(self, *, min_depth: float, max_depth: float, cuda_graphs: bool = False,
                          max_geometries: int = 1, points: bool = True, edge_threshold: float = 0.0,
                          edge_dilation: int = 0, capture: GraphCapture | None = None) -> DeviceFramePath:
        """A new on-device frame path for this estimator (`torch_runtime.device_frame.DeviceFramePath`, whose
        arguments these are): whole metric frames on `device`, with the fast preprocessing whatever `preprocess` is.
        What `FrameProcessor(on_device=...)` runs.

        Raises:
            ValueError: the backend is not torch (the path runs the torch network itself), or an option that
                `DeviceFramePath` refuses (CUDA graphs off CUDA, an empty validity range).
        """
        if self._torch is None:
            raise ValueError(f"the on-device frame path runs backend torch only, not {self.backend}")
        return DeviceFramePath(self, min_depth=min_depth, max_depth=max_depth, cuda_graphs=cuda_graphs,
                               max_geometries=max_geometries, points=points, capture=capture,
                               edge_threshold=edge_threshold, edge_dilation=edge_dilation)

    # ----- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], *, encoder: EncoderName, model_type: ModelType,
                        max_depth: float = 20.0, device: str | torch.device = "auto",
                        precision: PrecisionChoice = "auto", preprocess: PreprocessChoice = "auto",
                        source: str = "state_dict", backend: BackendChoice = "auto",
                        engine_options: EngineOptions | None = None) -> DepthEstimator:
        """Build from an official-layout state_dict (strict: every key, every shape). Float32 CPU tensors are
        used in place, not copied.

        Args:
            backend: the engine (`dav2_ros.engines.registry`): "auto" (torch on CUDA; OpenVINO on the CPU when
                installed, else torch), "torch", "openvino", "onnxruntime". The node's default is "auto" too.
            engine_options: threads, cache folder and compiled shapes kept (`dav2_ros.engines.EngineOptions`).

        Raises:
            CheckpointError: the weights are for another encoder, or keys/shapes do not match.
            BackendUnavailable: (a ValueError) the backend is not installed (naming the pip command), or does not run
                on this device or at this precision.
            ValueError: an invalid encoder/model_type/max_depth/device/precision/preprocess.
        """
        config = ModelConfig(encoder=encoder, model_type=model_type, max_depth=max_depth)
        if device == "auto" and backend in ENGINES and "cuda" not in ENGINES[backend].devices:
            device = "cpu"  # a CPU-only backend asked for by name: "auto" is the CPU, even where CUDA is
        torch_device = resolve_device(device)
        name, reason = resolve_backend(backend, torch_device.type, precision)
        if name == "torch":
            resolve_precision(precision, torch_device)  # refuse before the weights load
        mode = resolve_preprocess(preprocess, torch_device)
        model = network_with_weights(state_dict, config, source)
        engine = create_engine(name, model, torch_device, precision, engine_options)
        return cls(engine, config, preprocess=mode, backend_reason=reason)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, encoder: EncoderName, model_type: ModelType,
                        max_depth: float = 20.0, device: str | torch.device = "auto",
                        precision: PrecisionChoice = "auto", preprocess: PreprocessChoice = "auto",
                        backend: BackendChoice = "auto", engine_options: EngineOptions | None = None) -> DepthEstimator:
        """Build from an official `.pth` or a Hugging Face `.safetensors` file (`backend`: see `from_state_dict`).

        The model type is the caller's choice; a file name that contradicts it (or the metric scale) is logged
        as a warning on the "dav2_ros.model" logger.
        """
        state_dict = load_state_dict(path)
        estimator = cls.from_state_dict(state_dict, encoder=encoder, model_type=model_type, max_depth=max_depth,
                                        device=device, precision=precision, preprocess=preprocess, source=str(path),
                                        backend=backend, engine_options=engine_options)
        warn_about_name(path, model_type, max_depth)
        return estimator

    @classmethod
    def random(cls, *, encoder: EncoderName = "vits", model_type: ModelType = "metric", max_depth: float = 20.0,
               device: str | torch.device = "auto", precision: PrecisionChoice = "auto",
               preprocess: PreprocessChoice = "auto", seed: int = 0, backend: BackendChoice = "auto",
               engine_options: EngineOptions | None = None) -> DepthEstimator:
        """Deterministic stand-in weights (the parity fixtures' scheme; seed 0 = those exact weights), for demos
        and tests. The output is not a real depth estimate."""
        with torch.device("meta"):
            model = DepthAnythingV2(ModelConfig(encoder, model_type))
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        weights = {k: torch.from_numpy(v) for k, v in reference_state_dict(shapes, seed=seed).items()}
        return cls.from_state_dict(weights, encoder=encoder, model_type=model_type, max_depth=max_depth,
                                   device=device, precision=precision, preprocess=preprocess,
                                   source=f"random weights (seed {seed})", backend=backend,
                                   engine_options=engine_options)

    # ----- inference ----------------------------------------------------------------------------------------
    def infer(self, image: np.ndarray, input_size: int = 518, color_order: ColorOrder = "rgb") -> np.ndarray:
        """Depth for one uint8 HxWx3 image: float32 HxW at the image's size.

        Metric models give meters; relative models give affine-invariant inverse depth (larger = nearer).

        Args:
            image: uint8 HxWx3.
            input_size: the network's resolution: the shorter side is resized to at least this (multiples of 14);
                an integer >= 14 (`dav2_ros.model.config.input_size_problem`).
            color_order: channel order of `image`, "rgb" or "bgr" (as cv2.imread gives).
        """
        return self.infer_batch([image], input_size, color_order)[0]

    def infer_batch(self, images: Sequence[np.ndarray], input_size: int = 518,
                    color_order: ColorOrder = "rgb") -> list[np.ndarray]:
        """Depth for several images; images of the same size run as one batch. `last_timings` covers them all."""
        self._check_request(images, input_size, color_order)
        timings = dict.fromkeys(TIMING_KEYS, 0.0)
        results: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape[:2], []).append(i)
        for (height, width), indices in groups.items():
            for i, depth in zip(indices, self._run([images[i] for i in indices], input_size, color_order, timings)):
                results[i] = depth
        self.last_timings = timings
        return results  # type: ignore[return-value]

    def warmup(self, height: int, width: int, input_size: int = 518, runs: int = 1) -> None:
        """Run the network on a gray image of this size so the first real frame is not slowed by one-time setup."""
        image = np.full((height, width, 3), 128, dtype=np.uint8)
        for _ in range(runs):
            self.infer(image, input_size)

    # ----- internals ----------------------------------------------------------------------------------------
    def _check_request(self, images: Sequence[np.ndarray], input_size: int, color_order: str) -> None:
        problem = input_size_problem(input_size)
        if problem:
            raise ValueError(f"input_size {problem}, got {input_size!r}")
        check_color_order(color_order)
        for image in images:
            check_image(image)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _inputs(self, images: list[np.ndarray], input_size: int, color_order: ColorOrder) -> torch.Tensor:
        """Same-size images -> normalized float32 (B, 3, h, w) on `device` (the host for engines other than torch)."""
        if self._fast is not None:
            batch = np.ascontiguousarray(images[0])[None] if len(images) == 1 else np.stack(images)
            return self._fast(batch, input_size, color_order)
        arrays = [exact_preprocess(image, input_size, color_order) for image in images]
        return torch.from_numpy(arrays[0][None] if len(arrays) == 1 else np.stack(arrays)).to(self.device)

    @torch.inference_mode()
    def _run(self, images: list[np.ndarray], input_size: int, color_order: ColorOrder,
             timings: dict[str, float]) -> list[np.ndarray]:
        height, width = images[0].shape[:2]
        start = time.perf_counter()
        x = self._inputs(images, input_size, color_order)
        self._sync()
        prepared = time.perf_counter()
        if self._torch is not None:
            depth = self._torch.run_tensor(x.to(self._torch.dtype))
        else:
            depth = torch.from_numpy(self.engine.run(np.ascontiguousarray(x.numpy())))
        self._sync()
        inferred = time.perf_counter()
        depth = F.interpolate(depth[:, None].float(), (height, width), mode="bilinear", align_corners=True)[:, 0]
        out = depth.cpu().numpy()
        done = time.perf_counter()
        timings["preprocess"] += prepared - start
        timings["inference"] += inferred - prepared
        timings["postprocess"] += done - inferred
        return list(out)

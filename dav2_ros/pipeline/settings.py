"""The node's parameters as data: one table (name, default, range, choices, read_only, description),
the typed `NodeSettings` read from it, and the checks that refuse invalid values with a reason.

ROS-free on purpose (no rclpy import): `parameters.py` turns the table into ROS parameter
descriptors, the offline tool and the tests read `config/*.yaml` through `load_params_file`.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional, Union, get_args

from dav2_ros.conversions.pointcloud import CLOUD_LAYOUTS, CloudLayout
from dav2_ros.engines.registry import BACKEND_CHOICES, ENGINES
from dav2_ros.model.config import (ENCODERS, PATCH_SIZE, PRECISION_CHOICES, PREPROCESS_CHOICES, Dataset, ModelType,
                                   PrecisionChoice, PreprocessChoice, input_size_problem)
from dav2_ros.model.config import EncoderName as Encoder
from dav2_ros.geometry.depth_filters import (DEFAULT_EDGE_DILATION, DEFAULT_EDGE_THRESHOLD, DEFAULT_MAX_GAP_S,
                                             DEFAULT_TEMPORAL_MODE, TEMPORAL_MODES)

Precision = PrecisionChoice
Backend = Literal["auto", "torch", "openvino", "onnxruntime"]
Preprocess = PreprocessChoice
InputTransport = Literal["raw", "compressed"]
Reliability = Literal["reliable", "best_effort"]
CompileChoice = Literal["off", "default", "reduce-overhead", "max-autotune"]
BatchChoice = Literal["auto", "on", "off"]
SparseKind = Literal["off", "depth", "points"]  # the sparse.input parameter (node/sparse_input.py is the node's)
TemporalChoice = Literal["off", "scale", "ema"]

ParamValue = Union[bool, int, float, str, tuple[str, ...]]

# The node's name: the key of its section in config/*.yaml and the launch files' `name=`.
NODE_NAME = "depth_node"

# The input_size parameter's range (`input_size_problem`'s bounds): multiples of the patch from 70 (5 patches) to 1540.
INPUT_SIZE_MIN = 70
INPUT_SIZE_MAX = 1540
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
# A camera name is a relative ROS namespace: tokens of letters, digits and underscores, not starting with a digit.
_CAMERA_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
MAX_CAMERAS = 16
# Short names of the ONNX Runtime execution providers (dav2_ros.engines.onnxruntime_engine.PROVIDER_ALIASES).
ONNX_PROVIDER_ALIASES = ("tensorrt", "trt", "cuda", "cpu")


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: its default, its contract and its help text."""

    name: str
    default: ParamValue
    description: str
    read_only: bool = False
    choices: tuple[str, ...] = ()
    int_range: Optional[tuple[int, int, int]] = None  # (from, to, step); step 0 = any
    float_range: Optional[tuple[float, float]] = None  # inclusive

    @property
    def field(self) -> str:
        """The `NodeSettings` attribute for this parameter (`qos.output_depth` -> `qos_output_depth`)."""
        return self.name.replace(".", "_")


PARAM_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("encoder", "vits", "DINOv2 backbone of the checkpoint: vits (Small, 25M), vitb (Base, 98M), "
              "vitl (Large).", read_only=True, choices=tuple(ENCODERS)),
    ParamSpec("model_type", "metric", "metric: head outputs meters; relative: affine-invariant inverse depth "
              "(published on depth/relative; depth/image and points only with relative_scale).",
              read_only=True, choices=get_args(ModelType)),
    ParamSpec("dataset", "hypersim", "Training set of the official metric checkpoint picked when checkpoint is empty: "
              "hypersim (indoor, max_depth 20) or vkitti (outdoor, max_depth 80). Ignored for relative models.",
              read_only=True, choices=get_args(Dataset)),
    ParamSpec("max_depth", 20.0, "Metric head scale in meters (output = sigmoid * max_depth): 20 for Hypersim "
              "checkpoints, 80 for VKITTI. Must match the checkpoint's training.",
              read_only=True, float_range=(0.1, 1000.0)),
    ParamSpec("checkpoint", "", "Path to a .pth or Hugging Face .safetensors checkpoint; empty: the official file "
              "for encoder/model_type/dataset in weights_dir.", read_only=True),
    ParamSpec("weights_dir", "", "Folder holding the official checkpoints (filled by the `dav2_weights` command); "
              "empty: the default cache folder.", read_only=True),
    ParamSpec("allow_random_weights", False, "Start with random weights when no checkpoint is found (demos and tests "
              "only: the depth is meaningless). false: refuse to start without weights.", read_only=True),
    ParamSpec("device", "auto", "Inference device: auto (CUDA if available, else CPU), cpu, cuda or cuda:N.",
              read_only=True),
    ParamSpec("backend", "auto", "Engine that runs the network: auto (torch on CUDA; OpenVINO on the CPU when "
              "installed, as it is by default, else torch), torch (the reference), openvino (CPU only), onnxruntime. "
              "The start-up log says which engine runs and why.", read_only=True, choices=BACKEND_CHOICES),
    ParamSpec("onnxruntime.providers", (), "backend onnxruntime: ONNX Runtime execution providers in order of "
              "preference (tensorrt, cuda, cpu); empty: tensorrt (fp16 with precision auto, engine cache in the cache "
              "folder) > cuda > cpu on a CUDA device, cpu otherwise.", read_only=True),
    ParamSpec("onnxruntime.model", "", "backend onnxruntime: an ONNX file written by dav2_export, run for its network "
              "input size after a check that it holds the loaded weights; empty: each input size is exported from the "
              "loaded network into the cache folder on first use (and read from there on later starts).",
              read_only=True),
    ParamSpec("precision", "auto", "Inference precision: auto (fp16 on CUDA; on the CPU bf16 where it has native "
              "bf16, else fp32), fp32, fp16 (CUDA only), bf16, or int8 (CPU only, the ViT's Linear layers in int8: "
              "torch runs int8 GEMMs, ~1.5-2x fp32 on CPUs without native bf16; OpenVINO stores int8 weights via "
              "NNCF, `pip install nncf`; 0.2-1.6% mean depth change, docs/performance.md).",
              read_only=True, choices=PRECISION_CHOICES),
    ParamSpec("preprocess", "auto", "Resize/normalize path: exact (bit-faithful to the official code, on the CPU), "
              "fast (on the device), auto (fast on CUDA, exact on CPU).",
              read_only=True, choices=PREPROCESS_CHOICES),
    ParamSpec("input_size", 518, "Model input resolution in pixels (the shorter image side is resized to this), a "
              "multiple of 14. Smaller is faster and coarser; 518 is what the models were trained at.",
              int_range=(INPUT_SIZE_MIN, INPUT_SIZE_MAX, PATCH_SIZE)),
    ParamSpec("input_transport", "raw", "raw: subscribe to `image` (sensor_msgs/Image); compressed: subscribe to "
              "`image/compressed` (sensor_msgs/CompressedImage, JPEG or PNG).",
              read_only=True, choices=get_args(InputTransport)),
    ParamSpec("min_depth", 0.1, "Depths below this many meters are published as NaN (invalid).",
              float_range=(0.0, 1000.0)),
    ParamSpec("max_valid_depth", 20.0, "Depths above this many meters are published as NaN (invalid).",
              float_range=(0.001, 10000.0)),
    ParamSpec("publish_cloud", True, "Publish the organized point cloud on `points` (needs a CameraInfo)."),
    ParamSpec("cloud_stride", 1, "Keep every Nth row and column in the point cloud (1 = full resolution).",
              int_range=(1, 16, 1)),
    ParamSpec("cloud_rgb", False, "Add the image color to every point as a packed float32 `rgb` field."),
    ParamSpec("cloud_layout", "compact", "Byte layout of `points`: compact (x y z [rgb] FLOAT32 at 0/4/8 [/12], "
              "point_step 12, 16 with rgb) or depth_image_proc (its padded layout: point_step 16, 32 with rgb at 16).",
              choices=CLOUD_LAYOUTS),
    ParamSpec("relative_scale", 0.0, "Relative models only: metric inverse depth [1/m] = relative_scale * output "
              "+ relative_shift, depth = its inverse. 0: no conversion, only depth/relative is published.",
              float_range=(0.0, 1.0e9)),
    ParamSpec("relative_shift", 0.0, "Relative models only: see relative_scale.",
              float_range=(-1.0e9, 1.0e9)),
    ParamSpec("flying_pixel_threshold", DEFAULT_EDGE_THRESHOLD, "Flying-pixel filter: depth pixels whose relative "
              "jump |z - z_n| / min(z, z_n) to a 3x3 neighbour exceeds this become NaN in depth/image and points "
              "(the smeared depth between a foreground object and the background: phantom obstacles in a costmap). "
              "0 = off. The default is measured on real ground truth (README, Depth for costmaps).",
              float_range=(0.0, 10.0)),
    ParamSpec("flying_pixel_dilation", DEFAULT_EDGE_DILATION, "Flying-pixel filter: also drop this many pixels "
              "around each discontinuity (the network's transition is wider than 3x3).", int_range=(0, 8, 1)),
    ParamSpec("temporal_filter", DEFAULT_TEMPORAL_MODE, "Per-camera temporal stabilization of depth/image and "
              "points: off; scale (removes the frame-to-frame global scale jitter, follows constant-speed motion "
              "without lag, a speed change within a few frames); ema (per-pixel average in inverse depth with a "
              "per-pixel reset on large changes: also cuts pixel noise, but lags a moving camera; static or slow "
              "cameras). Lags are measured in the README (Depth for costmaps).", choices=TEMPORAL_MODES),
    ParamSpec("temporal_max_gap", DEFAULT_MAX_GAP_S, "The temporal filter starts over when two frames' stamps are "
              "more than this many seconds apart (or go backwards), when the frame_id or the image size changes.",
              float_range=(0.001, 3600.0)),
    ParamSpec("sparse.input", "off", "Metric scale from a sparse depth sensor, per camera: off; depth = read "
              "`sparse_depth` (sensor_msgs/Image 32FC1 meters or 16UC1 millimeters, registered to the camera image: "
              "same frame_id, same size or the same aspect ratio); points = read `sparse_points` (PointCloud2 in the "
              "camera's optical frame). Relative models: each frame's scale and shift are fitted to it (robustly, in "
              "inverse depth); metric models: a scale correction only with sparse.metric_correction.",
              read_only=True, choices=get_args(SparseKind)),
    ParamSpec("sparse.max_age", 0.5, "Seconds: the sparse message closest in stamp to the image is used only if "
              "its stamp is at most this far from the image's.", float_range=(0.0, 60.0)),
    ParamSpec("sparse.min_points", 30, "Fewest valid sparse points (and inliers) a fit needs.",
              int_range=(3, 1000000, 1)),
    ParamSpec("sparse.inlier_threshold", 0.1, "Relative depth error above which a sparse point is an outlier "
              "(0.1 = 10 %).", float_range=(0.001, 1.0)),
    ParamSpec("sparse.smoothing", 0.3, "Weight of the previous fit when a new one agrees with it within 5 % (a "
              "larger change replaces it at once): at most smoothing x 5 % of lag. 0 = each frame's own fit.",
              float_range=(0.0, 0.95)),
    ParamSpec("sparse.hold", 1.0, "Seconds (of stamp time) the last good fit stands in for frames without one; "
              "after that relative_scale/relative_shift (0: depth/relative only), or a metric model's own scale.",
              float_range=(0.0, 3600.0)),
    ParamSpec("sparse.metric_correction", False, "Metric models: correct the model's scale (scale only) with the "
              "sparse depths of sparse.input. Off: the sparse input is not used by metric models."),
    ParamSpec("qos.input_depth", 2, "History depth of the image and camera_info subscriptions (keep last).",
              read_only=True, int_range=(1, 100, 1)),
    ParamSpec("qos.input_reliability", "best_effort", "Reliability of the image and camera_info subscriptions: "
              "best_effort (sensor-data QoS, matches every publisher) or reliable (large raw images are not lost in "
              "DDS fragmentation, but a best-effort publisher is not matched).",
              read_only=True, choices=get_args(Reliability)[::-1]),  # its default first, as all
    ParamSpec("qos.output_reliability", "reliable", "Reliability of the outputs: reliable (every consumer can "
              "connect) or best_effort.", read_only=True, choices=get_args(Reliability)),
    ParamSpec("qos.output_depth", 2, "History depth of the outputs (keep last).", read_only=True,
              int_range=(1, 100, 1)),
    ParamSpec("num_threads", 0, "CPU threads for inference (torch.set_num_threads); 0 = all cores.",
              read_only=True, int_range=(0, 1024, 1)),
    ParamSpec("cameras", (), "Several cameras in one node: their names (relative namespaces, e.g. [front, rear]); "
              "camera `front` is read from front/image (or front/image/compressed) and front/camera_info and "
              "published on front/depth/image, front/depth/camera_info, front/points, front/depth/colored. Empty "
              "(default): one camera on image and camera_info.", read_only=True),
    ParamSpec("batch_cameras", "auto", "With several cameras: on = frames of the same size that wait at the same "
              "time go through the network as one batch; off = one after the other (each published as soon as it "
              "is done); auto = on with CUDA, off on the CPU (where batching measured no faster, "
              "docs/performance.md).", read_only=True, choices=get_args(BatchChoice)),
    ParamSpec("compile", "off", "torch.compile the network at start (compiled during the warm-up; minutes on a "
              "small CPU, and no faster there). reduce-overhead and max-autotune add inductor's CUDA graphs on CUDA "
              "(so neither goes with cuda_graphs).",
              read_only=True, choices=get_args(CompileChoice)),
    ParamSpec("cuda_graphs", False, "CUDA only: capture the whole on-device frame (preprocessing, network, "
              "upsampling, cloud) as a CUDA graph per frame size and replay it. Ignored, with a warning, on the CPU. "
              "Not with compile reduce-overhead or max-autotune (their own CUDA graphs).",
              read_only=True),
    ParamSpec("warmup_width", 640, "Width of the gray frame run through the whole pipeline at start, so the first "
              "camera frame pays no one-time setup (set it to the camera's size when compile or cuda_graphs is on).",
              read_only=True, int_range=(16, 8192, 1)),
    ParamSpec("warmup_height", 480, "Height of the warm-up frame (see warmup_width).",
              read_only=True, int_range=(16, 8192, 1)),
)

SPECS_BY_NAME: dict[str, ParamSpec] = {spec.name: spec for spec in PARAM_SPECS}


@dataclass(frozen=True)
class NodeSettings:
    """Every parameter of the depth node, typed; built once at start, replaced on a valid runtime change."""

    encoder: Encoder = "vits"
    model_type: ModelType = "metric"
    dataset: Dataset = "hypersim"
    max_depth: float = 20.0
    checkpoint: str = ""
    weights_dir: str = ""
    allow_random_weights: bool = False
    device: str = "auto"
    backend: Backend = "auto"
    onnxruntime_providers: tuple[str, ...] = ()
    onnxruntime_model: str = ""
    precision: Precision = "auto"
    preprocess: Preprocess = "auto"
    input_size: int = 518
    input_transport: InputTransport = "raw"
    min_depth: float = 0.1
    max_valid_depth: float = 20.0
    publish_cloud: bool = True
    cloud_stride: int = 1
    cloud_rgb: bool = False
    cloud_layout: CloudLayout = "compact"
    relative_scale: float = 0.0
    relative_shift: float = 0.0
    sparse_input: SparseKind = "off"
    sparse_max_age: float = 0.5
    sparse_min_points: int = 30
    sparse_inlier_threshold: float = 0.1
    sparse_smoothing: float = 0.3
    sparse_hold: float = 1.0
    sparse_metric_correction: bool = False
    flying_pixel_threshold: float = DEFAULT_EDGE_THRESHOLD
    flying_pixel_dilation: int = DEFAULT_EDGE_DILATION
    temporal_filter: TemporalChoice = DEFAULT_TEMPORAL_MODE
    temporal_max_gap: float = DEFAULT_MAX_GAP_S
    qos_input_depth: int = 2
    qos_input_reliability: Reliability = "best_effort"
    qos_output_reliability: Reliability = "reliable"
    qos_output_depth: int = 2
    num_threads: int = 0
    cameras: tuple[str, ...] = ()
    batch_cameras: BatchChoice = "auto"
    compile: CompileChoice = "off"
    cuda_graphs: bool = False
    warmup_width: int = 640
    warmup_height: int = 480

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "NodeSettings":
        """Build from parameter names (`qos.output_depth`) to values; missing names keep their default.

        Raises:
            SettingsError: an unknown name, a value of the wrong type or an invalid value.
        """
        unknown = sorted(set(params) - set(SPECS_BY_NAME))
        if unknown:
            raise SettingsError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(SPECS_BY_NAME)}")
        for name, value in params.items():
            reason = check_value(name, value)
            if reason:
                raise SettingsError(f"parameter {name}={value!r} refused: {reason}")
        values = {SPECS_BY_NAME[name].field: _coerce(SPECS_BY_NAME[name], value) for name, value in params.items()}
        settings = cls(**values)
        reason = check_consistency(settings)
        if reason:
            raise SettingsError(reason)
        return settings

    def with_params(self, params: Mapping[str, Any]) -> "NodeSettings":
        """A copy with some parameters changed, checked like `from_params`."""
        merged = {spec.name: getattr(self, spec.field) for spec in PARAM_SPECS}
        merged.update(params)
        return NodeSettings.from_params(merged)

    def as_params(self) -> dict[str, ParamValue]:
        """Parameter name -> value, in declaration order (for logging and the YAML files)."""
        return {spec.name: getattr(self, spec.field) for spec in PARAM_SPECS}

    @property
    def publishes_metric_depth(self) -> bool:
        """Metric models always; relative models only with a conversion (relative_scale != 0, or a sparse depth
        input that fits one per frame)."""
        return self.model_type == "metric" or self.relative_scale != 0.0 or self.sparse_input != "off"


class SettingsError(ValueError):
    """A parameter value (or a combination of values) the node refuses; the message says why."""


def _coerce(spec: ParamSpec, value: Any) -> ParamValue:
    """Integers are accepted where a float is declared (YAML `20` for `20.0`); string arrays become tuples."""
    if isinstance(spec.default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(spec.default, tuple):
        return tuple(value)
    return value


def _check_camera_names(value: Any) -> Optional[str]:
    """Why `value` is not a list of distinct camera names, or None."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return f"expected a list of camera names, got {type(value).__name__}"
    if not all(isinstance(name, str) for name in value):
        return "expected a list of strings (camera names)"
    if len(value) > MAX_CAMERAS:
        return f"at most {MAX_CAMERAS} cameras per node, got {len(value)}"
    bad = [name for name in value if not _CAMERA_PATTERN.match(name)]
    if bad:
        return (f"{bad[0]!r} is not a relative namespace (letters, digits and underscores, tokens joined by '/', "
                "no leading '/' or digit)")
    if len(set(value)) != len(value):
        return "camera names must be distinct"
    return None


def _check_provider_names(value: Any) -> Optional[str]:
    """Why `value` is not a list of ONNX Runtime execution provider names, or None (whether this onnxruntime build
    has them is checked when the engine starts)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return f"expected a list of execution providers, got {type(value).__name__}"
    for name in value:
        known = isinstance(name, str) and (name.lower() in ONNX_PROVIDER_ALIASES or name.endswith("ExecutionProvider"))
        if not known:
            return (f"{name!r} is not an execution provider: use {', '.join(ONNX_PROVIDER_ALIASES)} or ONNX Runtime's "
                    "names (e.g. TensorrtExecutionProvider)")
    return None


def check_value(name: str, value: Any) -> Optional[str]:
    """Why `value` is not acceptable for parameter `name`, or None when it is."""
    spec = SPECS_BY_NAME.get(name)
    if spec is None:
        return None  # not one of ours (use_sim_time, qos_overrides.*): rclpy checks those
    expected = type(spec.default)
    if expected is tuple:
        return _check_provider_names(value) if name == "onnxruntime.providers" else _check_camera_names(value)
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {type(value).__name__}"
        if not math.isfinite(value):
            return "must be finite"
    elif expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, got {type(value).__name__}"
    elif not isinstance(value, expected):
        return f"expected {expected.__name__}, got {type(value).__name__}"
    if spec.choices and value not in spec.choices:
        return f"must be one of {', '.join(spec.choices)}"
    if name == "input_size":  # the library's rule (model.config), within the parameter's range
        return input_size_problem(value, (INPUT_SIZE_MIN, INPUT_SIZE_MAX))
    if spec.int_range is not None:
        low, high, step = spec.int_range
        if not low <= value <= high:
            return f"must be in [{low}, {high}]"
        if step > 1 and (value - low) % step != 0:
            return f"must be {low} plus a multiple of {step}"
    if spec.float_range is not None:
        low_f, high_f = spec.float_range
        if not low_f <= value <= high_f:
            return f"must be in [{low_f:g}, {high_f:g}]"
    if name == "device" and not _DEVICE_PATTERN.match(value):
        return "must be auto, cpu, cuda or cuda:N"
    return None


def check_consistency(settings: NodeSettings) -> Optional[str]:
    """Why a combination of values is not acceptable (the single values being valid), or None."""
    if settings.min_depth >= settings.max_valid_depth:
        return (f"min_depth ({settings.min_depth:g} m) must be below max_valid_depth "
                f"({settings.max_valid_depth:g} m)")
    if settings.model_type == "metric" and (settings.relative_scale != 0.0 or settings.relative_shift != 0.0):
        return "relative_scale/relative_shift apply to relative models only (model_type is metric)"
    if settings.compile != "off" and settings.precision == "int8":
        return "compile does not apply to precision int8 (its quantized layers break the graph): use one of them"
    if settings.backend not in ("auto", "torch"):
        if settings.compile != "off" or settings.cuda_graphs:
            return (f"compile and cuda_graphs are torch features: they do not apply to backend {settings.backend} "
                    "(use backend torch, or leave them off)")
        runs_on = ENGINES[settings.backend].devices
        if settings.device.startswith("cuda") and "cuda" not in runs_on:
            return (f"backend {settings.backend} runs on the {' and '.join(runs_on)} only, not on device "
                    f"{settings.device}: use device cpu (or auto), or backend torch on CUDA")
    if settings.compile in ("reduce-overhead", "max-autotune") and settings.cuda_graphs:
        # Both modes turn on inductor's own CUDA graphs (torch._inductor.list_mode_options): a graph recorded
        # inside our capture of the whole frame, which CUDA refuses or records wrongly.
        return (f"compile {settings.compile} already captures CUDA graphs (inductor's own): set cuda_graphs false, "
                "or compile default")
    return None


def load_params_file(path: Union[str, pathlib.Path], node_name: str = NODE_NAME) -> dict[str, ParamValue]:
    """The node's parameters from a ROS 2 params file, flattened to dotted names (`qos.output_depth`).

    Reads the sections a ROS 2 node would apply, in rcl's order of precedence: `/**`, then
    `/**/<node_name>`, then `<node_name>` / `/<node_name>` (later ones win).

    Raises:
        SettingsError: the file is not a ROS 2 params file or has no section for the node.
    """
    import yaml  # local: only the file readers need it

    path = pathlib.Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SettingsError(f"cannot read params file {path}: {error}") from error
    if not isinstance(document, dict):
        raise SettingsError(f"params file {path} is not a mapping of node names to ros__parameters")
    keys = ("/**", f"/**/{node_name}", node_name, f"/{node_name}")
    found = [key for key in keys if isinstance(document.get(key), dict) and "ros__parameters" in document[key]]
    if not found:
        raise SettingsError(f"params file {path} has no section for {node_name} (looked for {', '.join(keys)})")
    params: dict[str, ParamValue] = {}
    for key in found:
        params.update(_flatten(document[key]["ros__parameters"] or {}))
    return params


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, ParamValue]:
    """Nested YAML mappings to dotted parameter names, as rcl does."""
    flat: dict[str, ParamValue] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def settings_from_file(path: Union[str, pathlib.Path]) -> NodeSettings:
    """`NodeSettings` from a params file, ignoring parameters that are not the node's (use_sim_time...)."""
    params = load_params_file(path)
    return NodeSettings.from_params({name: value for name, value in params.items() if name in SPECS_BY_NAME})


def _check_defaults_match() -> None:
    """The table and the dataclass must agree; checked at import so a drift fails loudly."""
    fields = {f.name: f.default for f in dataclasses.fields(NodeSettings)}
    table = {spec.field: spec.default for spec in PARAM_SPECS}
    if fields != table:
        raise AssertionError(f"NodeSettings and PARAM_SPECS disagree: {set(fields.items()) ^ set(table.items())}")


_check_defaults_match()

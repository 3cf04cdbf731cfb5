"""The torch network -> an ONNX model or an OpenVINO IR, checked against torch before the file appears.

What is exported is the network alone: a normalized float32 ``image`` (batch, 3, h, w) in, the raw ``depth``
(batch, h, w) out (meters for metric heads, inverse depth for relative ones), exactly what an engine's ``run``
takes and gives; preprocessing and upsampling to the camera's size stay in the package's one frame path.

Shapes: the batch is dynamic, the image size is fixed. The DINOv2 position embeddings are resized from
the 37x37 pretraining grid with the official bicubic scale factor ``(patches + 0.1) / 37``, a Python number
at trace time, so both exporters bake one input size's embeddings into the graph (tried: TorchScript
``dynamic_axes`` fails at any other size; ``torch.export`` with dynamic height/width "succeeds" and then
gives wrong depth, 2.5 % off, at a transposed size). One file per network input size, named with it:
``<name>_<h>x<w>.onnx``. The embeddings go into the graph as a table computed by torch
(`dav2_ros.engines.tracing`): OpenVINO's resize op gets the 518-pixel side wrong (1.4 % max error at 518x686
in f32 without the table, 2e-6 with it).

Every file is written under a temporary name in its destination folder, run (ONNX Runtime / OpenVINO on
the CPU, fp32) on a real camera frame next to the torch network, and renamed into place only when it
matches; a failure leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Optional

import numpy as np

if TYPE_CHECKING:
    import torch

    from dav2_ros.model.depth_anything_v2 import DepthAnythingV2

ExportFormat = Literal["onnx", "openvino"]
FORMATS: tuple[str, ...] = ("onnx", "openvino")

INPUT_NAME = "image"
OUTPUT_NAME = "depth"
#: The lowest opset with LayerNormalization as one op (TensorRT and ONNX Runtime fuse it).
ONNX_OPSET = 17
#: Largest export-vs-torch difference accepted, as a fraction of max|torch output| (fp32 both sides; measured
#: 1e-6 - 1e-5 for ONNX Runtime and OpenVINO on the CPU).
TOLERANCE = {"onnx": 1e-4, "openvino": 1e-3}
#: Batch sizes the printed trtexec line builds its TensorRT profile for (1 = one camera; up to 4 cameras).
TRT_MAX_BATCH = 4

#: The real camera frame in the package that exports are checked on (dav2_ros/data/README.md).
CHECK_FRAME = "tum_frame_640x480.jpg"

#: The pip command for each exporter's packages (said in one line when they are missing).
PIP_COMMANDS = {
    "onnx": "pip install onnx onnxruntime   (in this package: pip install '.[onnx]'; CUDA/TensorRT: onnxruntime-gpu)",
    "openvino": "pip install openvino",
}


class ExportError(RuntimeError):
    """The export cannot be done or did not match torch; the message is one line that says what and why."""


@dataclass(frozen=True)
class ExportCheck:
    """How one exported file compared with the torch network on the check frame.

    Attributes:
        format: "onnx" or "openvino".
        path: the final file (the .onnx, or the IR's .xml next to its .bin).
        max_error: max|export - torch| / max|torch|.
        mean_error: mean|export - torch| / mean|torch|.
        tolerance: the max_error it had to stay under.
        export_s: seconds to trace and write the file; check_s: seconds to load and run it once.
    """

    format: str
    path: Path
    max_error: float
    mean_error: float
    tolerance: float
    export_s: float
    check_s: float


# ----- names and shapes ------------------------------------------------------------------------------------
def network_shape(frame_width: int, frame_height: int, input_size: int) -> tuple[int, int]:
    """The network input (rows, cols) for frames of this size at this input size (the official resize rule)."""
    from dav2_ros.engines.preprocess import network_size  # cv2 + torch: not at this module's import

    return network_size(frame_height, frame_width, input_size)


def export_name(stem: str, height: int, width: int) -> str:
    """File stem of an export: the model's name and the fixed network input size, e.g. ``..._518x686``."""
    return f"{stem}_{height}x{width}"


def output_paths(outdir: Path, name: str, fmt: str) -> list[Path]:
    """The files one format writes (the one to open first): ONNX one file; OpenVINO IR the .xml and its .bin."""
    if fmt == "onnx":
        return [outdir / f"{name}.onnx"]
    return [outdir / f"{name}.xml", outdir / f"{name}.bin"]


def trtexec_command(onnx_path: Path, height: int, width: int, max_batch: int = TRT_MAX_BATCH) -> str:
    """The TensorRT command that builds an fp16 engine from the exported ONNX (run it on the target GPU/Jetson)."""
    engine = onnx_path.with_name(f"{onnx_path.stem}_fp16.engine")
    shape = f"3x{height}x{width}"
    return (f"trtexec --onnx={onnx_path} --saveEngine={engine} --fp16 --minShapes={INPUT_NAME}:1x{shape} "
            f"--optShapes={INPUT_NAME}:1x{shape} --maxShapes={INPUT_NAME}:{max_batch}x{shape}")


def weights_fingerprint(network: torch.nn.Module) -> str:
    """16 hex digits that change with any weight (names, shapes and bytes): what an exported file records, so the
    ONNX Runtime engine can tell whether a given file holds the loaded weights. ~0.1 s per 100 MB."""
    digest = hashlib.blake2b(digest_size=8)
    for key, tensor in network.state_dict().items():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{key}:{array.shape}:{array.dtype}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def cache_key(network: torch.nn.Module, weights: Optional[str] = None) -> str:
    """The name of cached exports of `network`: encoder, model type, metric scale and a hash of the weights, the
    network's code (dav2_ros/model, this file) and the torch version -- a change of any of them exports again."""
    import torch

    config = network.config
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{weights or weights_fingerprint(network)} torch {torch.__version__} opset {ONNX_OPSET}".encode())
    package = Path(__file__).resolve().parents[1]
    sources = sorted((package / "model").rglob("*.py")) + [Path(__file__).resolve(), package / "engines" / "tracing.py"]
    for source in sources:
        digest.update(source.read_bytes())
    scale = f"_{float(config.max_depth):g}m" if config.model_type == "metric" else ""
    return f"{config.encoder}_{config.model_type}{scale}_{digest.hexdigest()}"


# ----- the network ------------------------------------------------------------------------------------------
def build_network(state_dict: Mapping[str, torch.Tensor], *, encoder: str, model_type: str, max_depth: float,
                  source: str) -> DepthAnythingV2:
    """The fp32 CPU torch network with these weights, in eval mode (what is exported and the reference it is
    checked against).

    Raises:
        CheckpointError: weights of another encoder, or keys/shapes that do not fit.
        ValueError: an invalid encoder/model_type/max_depth.
    """
    from dav2_ros.weights.checkpoint import network_with_weights
    from dav2_ros.model.config import ModelConfig

    config = ModelConfig(encoder=encoder, model_type=model_type, max_depth=max_depth)
    return network_with_weights(state_dict, config, source).eval().requires_grad_(False)


def bundled_frame() -> np.ndarray:
    """The real 640x480 BGR camera frame shipped with the package (dav2_ros/data/README.md): what exports are
    checked on when the user names none."""
    import cv2
    from importlib.resources import files

    data = (files("dav2_ros") / "data" / CHECK_FRAME).read_bytes()
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ExportError(f"the bundled check frame dav2_ros/data/{CHECK_FRAME} is unreadable (a broken install?)")
    return image


def check_batch(image_bgr: np.ndarray, height: int, width: int) -> np.ndarray:
    """A real frame as the network input of this size: resized to exactly width x height (INTER_AREA), then the
    exact preprocessing (its shorter side is the input size). float32 (1, 3, height, width)."""
    import cv2

    from dav2_ros.engines.preprocess import exact_preprocess

    frame = cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_AREA)
    batch = exact_preprocess(frame, min(height, width), "bgr")[None]
    if batch.shape != (1, 3, height, width):
        raise ExportError(f"{width}x{height} is not a network input size (sides multiples of 14, the shorter one "
                          f"the input size); got {batch.shape[3]}x{batch.shape[2]}")
    return batch


def torch_output(network: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    """The torch network's fp32 output for a (B, 3, h, w) batch: the reference of every check."""
    import torch

    with torch.inference_mode():
        return network(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).float().numpy()


def relative_errors(output: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(max|out - ref| / max|ref|, mean|out - ref| / mean|ref|); inf when the shapes differ."""
    output = np.asarray(output, dtype=np.float32)
    if output.shape != reference.shape:
        return float("inf"), float("inf")
    diff = np.abs(output.astype(np.float64) - reference)
    scale = max(float(np.abs(reference).max()), 1e-12)
    return float(diff.max() / scale), float(diff.mean() / max(float(np.abs(reference).mean()), 1e-12))


# ----- writers and runners ----------------------------------------------------------------------------------
def require(fmt: str) -> None:
    """Import the packages `fmt` needs, or raise ExportError naming the pip command."""
    modules = ("onnx", "onnxruntime") if fmt == "onnx" else ("openvino",)
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            raise ExportError(f"{fmt} export needs the Python package '{module}', which is not installed: "
                              f"{PIP_COMMANDS[fmt]}") from None


def write_onnx(network: torch.nn.Module, height: int, width: int, path: Path, *,
               metadata: Optional[Mapping[str, str]] = None, opset: int = ONNX_OPSET) -> None:
    """Trace `network` at (1, 3, height, width) into an ONNX file (dynamic batch), with `metadata` as the model's
    metadata_props (what the ONNX Runtime engine checks a given file against)."""
    import onnx
    import torch

    from .tracing import static_position_embeddings

    example = torch.zeros(1, 3, height, width)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad(), \
            static_position_embeddings(network, tuple(example.shape)):
        warnings.simplefilter("ignore")  # TracerWarnings about shapes taken as constants: intended (a fixed size)
        torch.onnx.export(network, (example,), str(path), opset_version=opset, dynamo=False,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    if metadata:
        model = onnx.load(str(path))
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
        onnx.save(model, str(path))


def write_openvino(network: torch.nn.Module, height: int, width: int, xml_path: Path) -> None:
    """Convert `network` at (batch, 3, height, width) (dynamic batch) to an OpenVINO IR with fp32 weights
    (``save_model`` would compress them to fp16 by default)."""
    import openvino as ov

    from .tracing import trace

    # traced first (constant position embeddings): ~3x faster than handing convert_model the module
    model = ov.convert_model(trace(network, (1, 3, height, width)), input=[ov.PartialShape([-1, 3, height, width])])
    model.inputs[0].get_tensor().set_names({INPUT_NAME})
    model.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    ov.save_model(model, str(xml_path), compress_to_fp16=False)


def run_onnx(path: Path, batch: np.ndarray, providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> np.ndarray:
    """Run an ONNX file once in ONNX Runtime (CPU by default)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=list(providers))
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def run_openvino(xml_path: Path, batch: np.ndarray) -> np.ndarray:
    """Run an IR once in OpenVINO on the CPU at f32 (its default hint is bf16 on CPUs that have it)."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled(batch)[0]


_RUNNERS: dict[str, Callable[[Path, np.ndarray], np.ndarray]] = {"onnx": run_onnx, "openvino": run_openvino}


# ----- one checked export -----------------------------------------------------------------------------------
def export_checked(network: torch.nn.Module, fmt: str, height: int, width: int, outdir: Path, name: str,
                   batch: np.ndarray, *, reference: Optional[np.ndarray] = None,
                   metadata: Optional[Mapping[str, str]] = None) -> ExportCheck:
    """Export `network` in `fmt` at (height, width) to `outdir/name.*`, checked first.

    The file is written under a temporary name in `outdir`, run on `batch` and compared with the torch output
    (`reference`, computed when not given); only when max|diff| <= TOLERANCE[fmt] * max|torch| is it renamed
    into place (an OpenVINO IR's .bin before its .xml, so the file a reader opens appears last). Anything that
    fails removes the temporary files.

    Raises:
        ExportError: a missing package (naming the pip command), an export that fails or does not match torch.
        OSError: the folder cannot be written.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (choices: {', '.join(FORMATS)})")
    require(fmt)
    finals = output_paths(outdir, name, fmt)
    temps = [path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}") for path in finals]
    try:
        start = time.perf_counter()
        try:
            if fmt == "onnx":
                write_onnx(network, height, width, temps[0], metadata=metadata)
            else:
                write_openvino(network, height, width, temps[0])
        except OSError:
            raise
        except Exception as error:  # the exporters raise anything from RuntimeError to their own classes
            raise ExportError(f"{fmt} export at {width}x{height} failed: {type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}") from None
        exported = time.perf_counter()
        if reference is None:
            reference = torch_output(network, batch)
        output = _RUNNERS[fmt](temps[0], batch)
        checked = time.perf_counter()
        max_error, mean_error = relative_errors(output, reference)
        if not max_error <= TOLERANCE[fmt]:
            raise ExportError(f"{fmt} export at {width}x{height} does not match the torch network on the check "
                              f"frame: max error {max_error:.3g} x max|torch| > {TOLERANCE[fmt]:g}; nothing written")
        for temp, final in zip(reversed(temps), reversed(finals)):
            os.replace(temp, final)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    return ExportCheck(fmt, finals[0], max_error, mean_error, TOLERANCE[fmt], exported - start, checked - exported)


def model_metadata(encoder: str, model_type: str, max_depth: float, height: int, width: int,
                   fingerprint: str, source: str) -> dict[str, str]:
    """What an exported ONNX file says about itself (read back by the ONNX Runtime engine)."""
    return {
        "dav2_ros.encoder": encoder,
        "dav2_ros.model_type": model_type,
        "dav2_ros.max_depth": f"{max_depth:g}" if model_type == "metric" else "",
        "dav2_ros.input_height": str(height),
        "dav2_ros.input_width": str(width),
        "dav2_ros.weights": fingerprint,
        "dav2_ros.source": Path(source).name if source else "",
    }

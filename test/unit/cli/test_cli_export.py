"""`dav2_export` end to end (subprocesses of `python -m dav2_ros.cli.export`), and the checked export it runs.

Stand-in weights at small input sizes keep it quick on a CPU. What is checked is the command's contract: the
files it names (ONNX with dynamic batch, OpenVINO IR with fp32 weights), each running in ONNX Runtime /
OpenVINO like the torch network on a real frame (batch of 2, so the dynamic batch is exercised too), the
metadata the ONNX Runtime engine reads back, the printed trtexec line, the weights-folder lookup, and one-line
errors with exit status 1 and no file left behind. Parity with the official outputs on the shared cases goes
through the ONNX Runtime engine (test_engine_onnxruntime.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dav2_ros.engines import export as ex
from dav2_ros.model.config import ModelConfig
from dav2_ros.model.depth_anything_v2 import DepthAnythingV2
from dav2_ros.weights.standin_weights import reference_state_dict
from project_paths import PROJECT_DIR

ONNX_TOLERANCE = 1e-4  # max|onnxruntime - torch| <= this * max|torch|, fp32
OPENVINO_TOLERANCE = 1e-3


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m dav2_ros.cli.export ARGS` with the project on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "dav2_ros.cli.export", *args], capture_output=True, text=True,
                          env=env, timeout=600, cwd=cwd)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dav2_export: error:")]


def _standin_weights(encoder: str, model_type: str = "relative", seed: int = 0) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in DepthAnythingV2(ModelConfig(encoder, model_type)).state_dict().items()}
    return {k: torch.from_numpy(v) for k, v in reference_state_dict(shapes, seed=seed).items()}


def _network(encoder: str, model_type: str, max_depth: float = 20.0) -> DepthAnythingV2:
    return ex.build_network(_standin_weights(encoder, model_type), encoder=encoder, model_type=model_type,
                            max_depth=max_depth, source="stand-in")


def _two_frames(height: int, width: int) -> np.ndarray:
    """The bundled real frame and its mirror image as one (2, 3, h, w) batch."""
    batch = ex.check_batch(ex.bundled_frame(), height, width)
    return np.ascontiguousarray(np.concatenate([batch, batch[:, :, :, ::-1]]))


def _relative_max_error(output: np.ndarray, reference: np.ndarray) -> float:
    assert output.shape == reference.shape
    return float(np.abs(output - reference).max() / np.abs(reference).max())


@pytest.fixture(scope="module")
def vits_metric(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """vits metric (stand-in weights), input size 98 of a 640x480 frame, both formats, into a fresh folder."""
    outdir = tmp_path_factory.mktemp("export") / "out"  # created by the command
    return outdir, _run("--random-weights", "--encoder", "vits", "--model-type", "metric", "--input-size", "98",
                        "--frame-size", "640x480", "--outdir", str(outdir))


def test_vits_metric_writes_onnx_and_ir_named_by_size(vits_metric) -> None:
    outdir, proc = vits_metric
    assert proc.returncode == 0, proc.stderr
    height, width = ex.network_shape(640, 480, 98)
    assert (height, width) == (98, 126)
    name = f"random0_vits_metric_{height}x{width}"
    assert sorted(p.name for p in outdir.iterdir()) == [f"{name}.bin", f"{name}.onnx", f"{name}.xml"]
    assert "RANDOM weights" in proc.stderr
    for line in proc.stdout.splitlines():
        if line.startswith(("onnx:", "openvino:")):
            error = float(line.split("max error ")[1].split()[0])
            assert error <= (ONNX_TOLERANCE if line.startswith("onnx") else OPENVINO_TOLERANCE), line
    trtexec = [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("trtexec ")]
    assert trtexec == [f"trtexec --onnx={outdir / name}.onnx --saveEngine={outdir / name}_fp16.engine --fp16 "
                       f"--minShapes=image:1x3x98x126 --optShapes=image:1x3x98x126 --maxShapes=image:4x3x98x126"]


def test_vits_metric_onnx_runs_like_torch_with_a_batch_of_two(vits_metric) -> None:
    import onnxruntime as ort

    outdir, proc = vits_metric
    assert proc.returncode == 0, proc.stderr
    path = outdir / "random0_vits_metric_98x126.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[1:]) for i in session.get_inputs()] == [("image", [3, 98, 126])]
    assert isinstance(session.get_inputs()[0].shape[0], str)  # the dynamic batch
    batch = _two_frames(98, 126)
    network = _network("vits", "metric")
    output = session.run(None, {"image": batch})[0]
    assert _relative_max_error(output, ex.torch_output(network, batch)) <= ONNX_TOLERANCE
    metadata = session.get_modelmeta().custom_metadata_map
    assert metadata["dav2_ros.encoder"] == "vits" and metadata["dav2_ros.model_type"] == "metric"
    assert metadata["dav2_ros.max_depth"] == "20"
    assert (metadata["dav2_ros.input_height"], metadata["dav2_ros.input_width"]) == ("98", "126")
    assert metadata["dav2_ros.weights"] == ex.weights_fingerprint(network)


def test_vits_metric_openvino_ir_runs_like_torch(vits_metric) -> None:
    import openvino as ov

    outdir, proc = vits_metric
    assert proc.returncode == 0, proc.stderr
    xml = outdir / "random0_vits_metric_98x126.xml"
    model = ov.Core().read_model(str(xml))
    assert model.inputs[0].get_partial_shape().to_string() == "[?,3,98,126]"
    parameters = sum(t.numel() for t in _standin_weights("vits", "metric").values())
    # fp32 weights (fp16 would be 2 bytes each; unused tensors such as the mask token are dropped)
    assert xml.with_suffix(".bin").stat().st_size >= 3.5 * parameters
    batch = _two_frames(98, 126)
    output = ex.run_openvino(xml, batch)
    assert _relative_max_error(output, ex.torch_output(_network("vits", "metric"), batch)) <= OPENVINO_TOLERANCE


def test_vitb_relative_portrait_onnx(tmp_path) -> None:
    proc = _run("--random-weights", "--encoder", "vitb", "--model-type", "relative", "--input-size", "70",
                "--frame-size", "480x640", "--format", "onnx", "--outdir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    height, width = ex.network_shape(480, 640, 70)
    assert (height, width) == (98, 70)
    path = tmp_path / f"random0_vitb_relative_{height}x{width}.onnx"
    assert sorted(tmp_path.iterdir()) == [path]
    assert "max_depth" not in proc.stdout.splitlines()[0]
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = _two_frames(height, width)
    output = session.run(None, {"image": batch})[0]
    assert _relative_max_error(output, ex.torch_output(_network("vitb", "relative"), batch)) <= ONNX_TOLERANCE
    assert session.get_modelmeta().custom_metadata_map["dav2_ros.max_depth"] == ""


def test_official_file_from_the_weights_folder(tmp_path) -> None:
    """Without --checkpoint the official file name is looked up in --weights-dir, and names the export."""
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(_standin_weights("vits", seed=3), weights / "depth_anything_v2_vits.pth")
    proc = _run("--encoder", "vits", "--model-type", "relative", "--weights-dir", str(weights), "--input-size",
                "70", "--format", "onnx", "--outdir", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert str(weights / "depth_anything_v2_vits.pth") in proc.stdout
    path = tmp_path / "out" / "depth_anything_v2_vits_70x98.onnx"
    assert path.is_file()
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    network = ex.build_network(_standin_weights("vits", seed=3), encoder="vits", model_type="relative",
                               max_depth=20.0, source="seed 3")
    assert session.get_modelmeta().custom_metadata_map["dav2_ros.weights"] == ex.weights_fingerprint(network)
    assert ex.weights_fingerprint(network) != ex.weights_fingerprint(_network("vits", "relative"))


@pytest.fixture(scope="module")
def vits_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "my_vits.pth"
    torch.save(_standin_weights("vits"), path)
    return path


@pytest.mark.parametrize("case", ["unknown_encoder", "missing_checkpoint", "missing_official", "unwritable_outdir",
                                  "input_size_not_multiple_of_14", "checkpoint_of_other_encoder", "unknown_format"])
def test_bad_input_one_line_exit_1_no_file(case: str, tmp_path: Path, vits_checkpoint: Path) -> None:
    outdir = tmp_path / "out"
    common = ["--input-size", "70", "--outdir", str(outdir)]
    args, expected = {
        "unknown_encoder": (["--random-weights", "--encoder", "vitx"], "unknown encoder 'vitx'"),
        "missing_checkpoint": (["--checkpoint", str(tmp_path / "nope.pth")], "checkpoint file not found"),
        "missing_official": (["--weights-dir", str(tmp_path)], "dav2_weights download --encoder vits"),
        "unwritable_outdir": (["--random-weights"], "cannot write to the output folder"),
        "input_size_not_multiple_of_14": (["--random-weights", "--input-size", "500"], "multiple of 14"),
        "checkpoint_of_other_encoder": (["--checkpoint", str(vits_checkpoint), "--encoder", "vitb"],
                                        "checkpoint is vits (embed dim 384), encoder parameter is vitb"),
        "unknown_format": (["--random-weights", "--format", "tflite"], "unknown format 'tflite'"),
    }[case]
    if case == "unwritable_outdir":  # root may write anywhere: a folder below a regular file cannot exist
        (tmp_path / "a_file").write_text("")
        outdir = tmp_path / "a_file" / "out"
        common = ["--input-size", "70", "--outdir", str(outdir)]
    proc = _run(*common, *args)
    assert proc.returncode == 1, proc.stderr
    errors = _error_lines(proc.stderr)
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) <= 2  # + the random-weights warning
    assert "Traceback" not in proc.stderr
    assert not outdir.exists() or not any(outdir.iterdir())


def test_a_mismatch_writes_nothing(tmp_path: Path) -> None:
    """An export that does not match torch (here: compared with a wrong reference) leaves no file, not even a
    temporary one."""
    network = _network("vits", "relative")
    batch = ex.check_batch(ex.bundled_frame(), 70, 98)
    wrong = ex.torch_output(network, batch) * 1.01
    for fmt in ex.FORMATS:
        with pytest.raises(ex.ExportError, match="does not match the torch network"):
            ex.export_checked(network, fmt, 70, 98, tmp_path, "model_70x98", batch, reference=wrong)
    assert list(tmp_path.iterdir()) == []
    check = ex.export_checked(network, "onnx", 70, 98, tmp_path, "model_70x98", batch)
    assert check.max_error <= ONNX_TOLERANCE and sorted(tmp_path.iterdir()) == [tmp_path / "model_70x98.onnx"]


def test_the_network_shape_follows_the_node_resize_rule() -> None:
    assert ex.network_shape(640, 480, 518) == (518, 686)
    assert ex.network_shape(1280, 720, 518) == (518, 924)
    assert ex.network_shape(480, 640, 518) == (686, 518)
    assert ex.network_shape(320, 240, 518) == (518, 686)
    with pytest.raises(ex.ExportError, match="not a network input size"):
        ex.check_batch(ex.bundled_frame(), 100, 140)

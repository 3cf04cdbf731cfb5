"""`dav2_infer` end to end (subprocess of `python -m dav2_ros.cli.infer`) on the bundled TUM frame.

Random weights at input size 98 keep it quick on a CPU; what is checked is the command's
contract: raw float32 HxW .npy at the input's size equal to the estimator's output, a PNG,
per-image timing, and one-line errors that say what to do.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dav2_ros.weights.standin_weights import reference_tensor
from project_paths import PROJECT_DIR

INPUT_SIZE = "98"


@pytest.fixture(scope="module")
def tum_png(bags_dir, tmp_path_factory) -> Path:
    """The 640x480 rgb8 TUM RGB-D frame from the bundled bag, written as a BGR PNG."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    with AnyReader([bags_dir / "tum_rgbd"], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        connections = [c for c in reader.connections if c.topic == "/camera/color/image_raw"]
        connection, _, raw = next(reader.messages(connections=connections))
        msg = reader.deserialize(raw, connection.msgtype)
    assert msg.encoding == "rgb8"
    rgb = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 3]
    path = tmp_path_factory.mktemp("images") / "tum.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb.reshape(msg.height, msg.width, 3), cv2.COLOR_RGB2BGR))
    return path


def _run(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m dav2_ros.cli.infer ARGS` on the CPU, with the project on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "dav2_ros.cli.infer", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _error_lines(stderr: str) -> list[str]:
    """The `dav2_infer: error:` lines of a run's stderr."""
    return [line for line in stderr.splitlines() if line.startswith("dav2_infer: error:")]


def test_random_weights_write_raw_float32_depth_at_the_input_size(tum_png, tmp_path):
    from dav2_ros.engines.estimator import DepthEstimator

    out = tmp_path / "out"
    result = _run(
        str(tum_png), "--random-weights", "--encoder", "vits", "--model-type", "metric", "--max-depth", "20",
        "--input-size", INPUT_SIZE, "--device", "cpu", "--precision", "fp32", "--preprocess", "exact",
        "--outdir", str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING: --random-weights" in result.stderr and "MEANINGLESS" in result.stderr
    assert re.search(
        r"^\[1/1\] tum\.png 640x480: \d+\.\d{3} s \(preprocess \d+\.\d{3}, inference \d+\.\d{3}, "
        r"postprocess \d+\.\d{3}\), range [\d.e+-]+\.\.[\d.e+-]+ -> tum\.npy, tum\.png$",
        result.stdout,
        re.MULTILINE,
    ), result.stdout

    depth = np.load(out / "tum.npy")
    assert depth.dtype == np.float32 and depth.shape == (480, 640)
    # Nothing rescaled: the file holds exactly what the estimator returns (metric head: 0 < d < max_depth).
    image = cv2.imread(str(tum_png), cv2.IMREAD_COLOR)
    estimator = DepthEstimator.random(
        encoder="vits", model_type="metric", max_depth=20.0, device="cpu", precision="fp32", preprocess="exact"
    )
    expected = estimator.infer(image, int(INPUT_SIZE), color_order="bgr")
    np.testing.assert_allclose(depth, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(depth)) and 0.0 < depth.min() and depth.max() < 20.0

    png = cv2.imread(str(out / "tum.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (480, 640, 3) and png.dtype == np.uint8
    assert len(np.unique(png.reshape(-1, 3), axis=0)) > 10  # a real colour gradient, not a blank image


def test_folder_input_relative_grayscale_and_an_unreadable_file(tum_png, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    frame = cv2.imread(str(tum_png), cv2.IMREAD_COLOR)
    cv2.imwrite(str(images / "a_full.png"), frame)
    cv2.imwrite(str(images / "b_portrait.jpg"), cv2.rotate(frame[:, :400], cv2.ROTATE_90_CLOCKWISE))
    (images / "c_broken.jpg").write_bytes(b"not a jpeg")
    (images / "notes.txt").write_text("ignored: not an image suffix inside a folder")
    out = tmp_path / "out"
    result = _run(
        str(images), "--random-weights", "--model-type", "relative", "--input-size", INPUT_SIZE,
        "--device", "cpu", "--grayscale", "--outdir", str(out),
    )
    assert result.returncode == 1  # one image failed; the others were still written
    assert "cannot read" in result.stderr and "c_broken.jpg" in result.stderr
    assert _error_lines(result.stderr) == ["dav2_infer: error: 1 image(s) failed"]
    assert "[1/3] a_full.png 640x480" in result.stdout and "[2/3] b_portrait.jpg 480x400" in result.stdout
    full, portrait = np.load(out / "a_full.npy"), np.load(out / "b_portrait.npy")
    assert full.shape == (480, 640) and portrait.shape == (400, 480)
    assert full.dtype == portrait.dtype == np.float32
    assert np.all(full >= 0.0)  # relative head: ReLU inverse depth
    gray = cv2.imread(str(out / "b_portrait.png"), cv2.IMREAD_UNCHANGED)
    assert gray.shape == (400, 480) and gray.dtype == np.uint8
    assert sorted(p.name for p in out.iterdir()) == ["a_full.npy", "a_full.png", "b_portrait.npy", "b_portrait.png"]


def test_missing_official_checkpoint_names_the_file_and_the_download_command(tum_png, tmp_path):
    weights = tmp_path / "weights"
    result = _run(
        str(tum_png), "--encoder", "vits", "--model-type", "metric", "--dataset", "hypersim",
        "--outdir", str(tmp_path / "out"), env_extra={"DAV2_WEIGHTS_DIR": str(weights)},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1
    assert str(weights / "depth_anything_v2_metric_hypersim_vits.pth") in errors[0]
    assert (
        f"ros2 run dav2_ros dav2_weights download --encoder vits --model-type metric --dataset hypersim "
        f"--dir {weights}"
    ) in errors[0]
    assert f"dav2_weights download --encoder vits --model-type metric --dataset hypersim --dir {weights}" in errors[0]
    assert not (tmp_path / "out").exists()  # nothing written when the model cannot load


def test_checkpoint_of_another_encoder_is_a_one_line_error(tum_png, tmp_path):
    shapes = {"pretrained.cls_token": (1, 1, 768), "pretrained.patch_embed.proj.weight": (768, 3, 14, 14)}
    checkpoint = tmp_path / "depth_anything_v2_metric_hypersim_vitb.pth"
    buffer = io.BytesIO()
    torch.save({key: torch.from_numpy(reference_tensor(key, shape)) for key, shape in shapes.items()}, buffer)
    checkpoint.write_bytes(buffer.getvalue())
    result = _run(str(tum_png), "--checkpoint", str(checkpoint), "--encoder", "vits", "--device", "cpu",
                  "--outdir", str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1 and "checkpoint is vitb (embed dim 768)" in errors[0] and "vits" in errors[0]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--random-weights", "--checkpoint", "x.pth"], "not allowed with argument"),
        (["--input-size", "7", "--random-weights"], "--input-size must be an integer >= 14 (one patch), got 7"),
    ],
)
def test_bad_arguments_are_refused(tum_png, tmp_path, extra, message):
    result = _run(str(tum_png), *extra, "--outdir", str(tmp_path / "out"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_no_images_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _run(str(tmp_path / "empty"), "--random-weights", "--outdir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert _error_lines(result.stderr) == [
        f"dav2_infer: error: no images found in {tmp_path / 'empty'} "
        f"(looked for .jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp, .ppm, .pgm)"
    ]
    missing = _run(str(tmp_path / "nope.jpg"), "--random-weights")
    assert missing.returncode == 2 and _error_lines(missing.stderr) == [
        f"dav2_infer: error: input not found: {tmp_path / 'nope.jpg'}"
    ]

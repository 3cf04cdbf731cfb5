"""The weights folder and checkpoint resolution: explicit path wins, missing files say how to fetch them."""

import subprocess
import sys
from pathlib import Path

import pytest

from dav2_ros.weights.cache import (
    WEIGHTS_DIR_ENV,
    WeightsNotFound,
    default_weights_dir,
    resolve_checkpoint,
    weights_dir,
)
from project_paths import PROJECT_DIR


def test_default_folder_is_env_then_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(WEIGHTS_DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_weights_dir() == tmp_path / "home" / ".cache" / "dav2_ros"
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "w"))
    assert default_weights_dir() == tmp_path / "w"
    # An explicit folder wins over the environment; an empty one means "the default".
    assert weights_dir(tmp_path / "x") == tmp_path / "x"
    assert weights_dir("") == tmp_path / "w"
    assert weights_dir(None) == tmp_path / "w"


def test_empty_checkpoint_resolves_the_official_file_in_the_folder(tmp_path):
    target = tmp_path / "depth_anything_v2_metric_vkitti_vitb.pth"
    target.write_bytes(b"x")
    assert resolve_checkpoint("", "vitb", "metric", "vkitti", tmp_path) == target
    relative = tmp_path / "depth_anything_v2_vits.pth"
    relative.write_bytes(b"x")
    assert resolve_checkpoint(None, "vits", "relative", "vkitti", tmp_path) == relative


def test_explicit_checkpoint_wins_over_the_folder(tmp_path):
    mine = tmp_path / "elsewhere" / "finetuned.pth"
    mine.parent.mkdir()
    mine.write_bytes(b"x")
    (tmp_path / "depth_anything_v2_metric_hypersim_vits.pth").write_bytes(b"official")
    assert resolve_checkpoint(str(mine), "vits", "metric", "hypersim", tmp_path) == mine


def test_missing_official_file_names_the_file_and_both_download_commands(monkeypatch, tmp_path):
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    with pytest.raises(WeightsNotFound) as info:
        resolve_checkpoint("", "vits", "metric", "hypersim")
    message = str(info.value)
    expected = tmp_path / "depth_anything_v2_metric_hypersim_vits.pth"
    assert info.value.path == expected
    assert str(expected) in message
    args = f"download --encoder vits --model-type metric --dataset hypersim --dir {tmp_path}"
    assert f"`ros2 run dav2_ros dav2_weights {args}`" in message
    assert f"`dav2_weights {args}`" in message
    assert info.value.download_command == f"ros2 run dav2_ros dav2_weights {args}"
    assert "\n" not in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_file_in_the_fallback_folder_needs_no_dir_argument(monkeypatch, tmp_path):
    monkeypatch.delenv(WEIGHTS_DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(WeightsNotFound) as info:
        resolve_checkpoint("", "vitb", "relative", None)
    assert str(tmp_path / ".cache" / "dav2_ros" / "depth_anything_v2_vitb.pth") in str(info.value)
    assert "`ros2 run dav2_ros dav2_weights download --encoder vitb --model-type relative`" in str(info.value)


def test_missing_explicit_file_and_folder_instead_of_file(tmp_path):
    with pytest.raises(WeightsNotFound, match=r"checkpoint file not found: .*nope\.pth \(given explicitly\)"):
        resolve_checkpoint(str(tmp_path / "nope.pth"), "vits", "metric")
    with pytest.raises(WeightsNotFound, match="is a folder, not a checkpoint file"):
        resolve_checkpoint(str(tmp_path), "vits", "metric")


def test_home_in_explicit_paths_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "w.pth").write_bytes(b"x")
    assert resolve_checkpoint("~/w.pth", "vits", "metric") == Path(tmp_path / "w.pth")


def test_the_weights_package_imports_no_huggingface_hub():
    # The node resolves its checkpoint through dav2_ros.weights at start: huggingface_hub is for downloading only.
    code = ("import sys, dav2_ros.weights, dav2_ros.weights.cache, dav2_ros.weights.download\n"
            "print('huggingface_hub' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "False", result.stderr

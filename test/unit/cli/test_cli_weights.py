"""`dav2_weights list` and `path` (subprocess of `python -m dav2_ros.cli.weights`); downloads are in
test_weights_download."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys

import pytest

from dav2_ros.cli.weights import main
from dav2_ros.weights import catalog
from dav2_ros.weights.catalog import official_checkpoint
from project_paths import PROJECT_DIR


def _run(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m dav2_ros.cli.weights ARGS` with the project on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "dav2_ros.cli.weights", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_path_prints_the_official_file_and_exits_1_with_the_command_when_missing(tmp_path):
    result = _run("path", "--encoder", "vitb", "--model-type", "metric", "--dataset", "vkitti",
                  env_extra={"DAV2_WEIGHTS_DIR": str(tmp_path)})
    expected = tmp_path / "depth_anything_v2_metric_vkitti_vitb.pth"
    assert result.returncode == 1
    assert result.stdout == f"{expected}\n"
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"dav2_weights: error: checkpoint not found: {expected}")
    assert "dav2_weights download --encoder vitb --model-type metric --dataset vkitti" in result.stderr

    expected.write_bytes(b"present")
    present = _run("path", "--encoder", "vitb", "--model-type", "metric", "--dataset", "vkitti",
                   env_extra={"DAV2_WEIGHTS_DIR": str(tmp_path)})
    assert (present.returncode, present.stdout, present.stderr) == (0, f"{expected}\n", "")


def test_path_with_an_explicit_checkpoint(tmp_path, capsys):
    mine = tmp_path / "mine.safetensors"
    mine.write_bytes(b"x")
    assert main(["path", "--checkpoint", str(mine)]) == 0
    assert capsys.readouterr().out == f"{mine}\n"
    assert main(["path", "--checkpoint", str(tmp_path / "gone.pth")]) == 1
    assert "checkpoint file not found" in capsys.readouterr().err


def test_list_shows_the_folder_sizes_and_official_names_but_no_hidden_files(tmp_path):
    official = official_checkpoint("vits", "metric", "vkitti")
    (tmp_path / official.filename).write_bytes(b"\0" * 2_500_000)
    (tmp_path / "my_finetune.pth").write_bytes(b"\0" * 1234)
    (tmp_path / ".partial-abc123-depth_anything_v2_vitb.pth").write_bytes(b"\0" * 10)
    (tmp_path / "README.txt").write_text("not a checkpoint")
    result = _run("list", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"weights folder: {tmp_path}"
    official_line = next(line for line in lines if official.filename in line)
    assert "2.5 MB" in official_line and "official vits metric vkitti (outdoor, max_depth 80 m)" in official_line
    other_line = next(line for line in lines if "my_finetune.pth" in line)
    assert "1.2 kB" in other_line and "not an official file name" in other_line
    assert not any(".partial-abc123" in line for line in lines)  # a hidden leftover of the old downloader
    assert not any("README.txt" in line for line in lines)


def test_list_all_shows_every_official_file_with_its_url(tmp_path):
    (tmp_path / "depth_anything_v2_vitl.pth").write_bytes(b"x")
    result = _run("list", "--all", "--dir", str(tmp_path / "missing-folder"))
    assert result.returncode == 0
    assert f"weights folder: {tmp_path / 'missing-folder'} (does not exist yet)" in result.stdout
    assert "no checkpoints cached" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.strip().startswith("[")]
    assert len(rows) == 9 and all("[missing]" in row for row in rows)
    entry = official_checkpoint("vitb", "metric", "hypersim")
    assert any(entry.filename in row and entry.url in row for row in rows)


def test_list_check_flags_a_file_that_does_not_match_the_published_sha256(tmp_path, capsys, monkeypatch):
    corrupt = official_checkpoint("vits", "relative")
    (tmp_path / corrupt.filename).write_bytes(b"flipped bits")
    good = dataclasses.replace(official_checkpoint("vits", "metric", "hypersim"),
                               sha256=hashlib.sha256(b"stand-in").hexdigest())
    monkeypatch.setitem(catalog._BY_FILENAME, good.filename, good)
    (tmp_path / good.filename).write_bytes(b"stand-in")
    assert main(["list", "--check", "--dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert any(corrupt.filename in line and "[SHA256 MISMATCH]" in line for line in captured.out.splitlines())
    assert any(good.filename in line and "[sha256 ok]" in line for line in captured.out.splitlines())
    assert captured.err == "dav2_weights: error: 1 cached file(s) do not match the published sha256\n"
    assert hashlib.sha256(b"flipped bits").hexdigest() != corrupt.sha256


@pytest.mark.parametrize("argv", [["download", "--encoder", "vitg"], ["list", "--bogus"], []])
def test_bad_arguments_exit_2(argv):
    result = _run(*argv)
    assert result.returncode == 2 and "usage: dav2_weights" in result.stderr and "Traceback" not in result.stderr


def test_unwritable_folder_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the folder should be")
    result = _run("download", "--dir", str(blocker / "weights"), "--base-url", "http://127.0.0.1:9", "--no-progress")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"dav2_weights: error: cannot create the weights folder {blocker}")

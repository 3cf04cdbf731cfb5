"""The checkpoint downloader against a real HTTP server on 127.0.0.1 (started per test).

Covers a complete transfer (lands, loads, listed by `dav2_weights list`), a truncated transfer,
server errors, a wrong checksum, a file that is not a checkpoint, a stalled server and an
unreachable host: never a partial file under the final name, never a temporary file left behind,
always a one-line message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest
import torch

from dav2_ros.model.standin_weights import reference_tensor
from dav2_ros.weights.catalog import official_checkpoint
from dav2_ros.weights.download import PARTIAL_PREFIX, DownloadError, download_checkpoint
from project_paths import PROJECT_DIR

EMBED_DIM = {"vits": 384, "vitb": 768, "vitl": 1024}


def standin_checkpoint_bytes(encoder: str) -> bytes:
    """A small real `torch.save` checkpoint: a few official-layout keys of `encoder` with stand-in values."""
    dim = EMBED_DIM[encoder]
    shapes = {
        "pretrained.cls_token": (1, 1, dim),
        "pretrained.pos_embed": (1, 1370, dim),
        "pretrained.patch_embed.proj.weight": (dim, 3, 14, 14),
        "pretrained.patch_embed.proj.bias": (dim,),
        "depth_head.scratch.output_conv2.2.bias": (1,),
    }
    state = {key: torch.from_numpy(reference_tensor(key, shape)) for key, shape in shapes.items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@dataclass
class Route:
    """What the test server answers on one path.

    Attributes:
        status: HTTP status; 3xx uses `location`, 4xx/5xx send an error page.
        body: the bytes of a 200 answer.
        send: how many bytes of `body` to actually send before closing (None: all).
        declare_length: send a Content-Length header (the full body's length).
        stall_s: seconds to sleep after the headers, before the body.
        location: redirect target path for 3xx.
        content_type: the Content-Type of a 200 answer.
    """

    status: int = 200
    body: bytes = b""
    send: Optional[int] = None
    declare_length: bool = True
    stall_s: float = 0.0
    location: str = ""
    content_type: str = "application/octet-stream"


@dataclass
class WeightsServer:
    """A tiny HTTP/1.0 server laid out like huggingface.co, answering from `routes`."""

    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    base_url: str = ""


def _make_handler(state: WeightsServer):
    """A request handler class bound to `state`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            state.requests.append(self.path)
            route = state.routes.get(self.path)
            if route is None:
                self.send_error(404, "Entry not found")
                return
            if 300 <= route.status < 400:
                self.send_response(route.status)
                self.send_header("Location", state.base_url + route.location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if route.status != 200:
                self.send_error(route.status)
                return
            self.send_response(200)
            self.send_header("Content-Type", route.content_type)
            if route.declare_length:
                self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.flush()
            if route.stall_s:
                time.sleep(route.stall_s)
            sent = route.body if route.send is None else route.body[: route.send]
            try:
                self.wfile.write(sent)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture()
def server():
    """A WeightsServer on an ephemeral 127.0.0.1 port, shut down after the test."""
    state = WeightsServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _path_of(entry) -> str:
    """The request path of an entry under a hub-layout host."""
    return f"/{entry.hf_repo}/resolve/main/{entry.filename}"


def _assert_nothing_left(folder: Path, filename: str) -> None:
    """No file under the final name and no temporary file in the folder."""
    assert not (folder / filename).exists()
    if folder.exists():
        assert [p.name for p in folder.iterdir() if p.name.startswith(PARTIAL_PREFIX)] == []


def _run_cli(*args: str, env_extra: Optional[dict] = None) -> subprocess.CompletedProcess:
    """`python -m dav2_ros.cli.weights ARGS` with the project on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "dav2_ros.cli.weights", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """A failed CLI run: non-zero status, exactly one error line, no traceback, containing `needles`."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("dav2_weights: error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_complete_download_lands_loads_and_is_listed(server, tmp_path):
    from dav2_ros.model.checkpoint import load_state_dict

    entry = official_checkpoint("vits", "metric", "hypersim")  # no published sha256: size + load checks
    body = standin_checkpoint_bytes("vits")
    # Like the hub: /resolve/main/ answers with a redirect to the storage host.
    server.routes[_path_of(entry)] = Route(status=302, location="/cdn/blob-1")
    server.routes["/cdn/blob-1"] = Route(body=body)
    folder = tmp_path / "weights"

    result = _run_cli(
        "download", "--encoder", "vits", "--model-type", "metric", "--dataset", "hypersim", "--dir", str(folder),
        env_extra={"DAV2_WEIGHTS_BASE_URL": server.base_url},
    )
    assert result.returncode == 0, result.stderr
    target = folder / entry.filename
    assert target.read_bytes() == body
    assert f"saved {target}" in result.stdout
    assert f"sha256 {hashlib.sha256(body).hexdigest()}" in result.stdout
    assert server.requests == [_path_of(entry), "/cdn/blob-1"]
    _assert_nothing_left(folder, "no-such-file")

    loaded = load_state_dict(target)
    expected = torch.load(io.BytesIO(body), weights_only=True)
    assert set(loaded) == set(expected)
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)

    listing = _run_cli("list", "--dir", str(folder))
    assert listing.returncode == 0, listing.stderr
    assert f"weights folder: {folder}" in listing.stdout
    line = next(line for line in listing.stdout.splitlines() if entry.filename in line)
    assert "official vits metric hypersim (indoor, max_depth 20 m)" in line
    assert f"{len(body) / 1e6:.1f} MB" in line

    # A second download is a no-op that says so (and makes no request).
    again = _run_cli("download", "--dir", str(folder), env_extra={"DAV2_WEIGHTS_BASE_URL": server.base_url})
    assert again.returncode == 0 and "already present" in again.stdout
    assert len(server.requests) == 2


def test_matching_published_checksum_is_verified(server, tmp_path):
    body = standin_checkpoint_bytes("vitb")
    entry = dataclasses.replace(
        official_checkpoint("vitb", "relative"), sha256=hashlib.sha256(body).hexdigest()
    )
    server.routes[_path_of(entry)] = Route(body=body)
    old_umask = os.umask(0o027)
    try:
        result = download_checkpoint(entry, tmp_path, base=server.base_url, progress=False)
    finally:
        os.umask(old_umask)
    assert result.downloaded and result.checksum_verified
    assert result.size == len(body) and (tmp_path / entry.filename).read_bytes() == body
    # Not the owner-only mode of the temporary file: what a plain open() would have created.
    assert (tmp_path / entry.filename).stat().st_mode & 0o777 == 0o640


def test_truncated_transfer_leaves_nothing_under_the_final_name(server, tmp_path):
    entry = official_checkpoint("vits", "metric", "vkitti")
    body = standin_checkpoint_bytes("vits")
    server.routes[_path_of(entry)] = Route(body=body, send=len(body) // 3)
    with pytest.raises(DownloadError) as info:
        download_checkpoint(entry, tmp_path, base=server.base_url, progress=False)
    message = str(info.value)
    assert f"truncated transfer: received {len(body) // 3} of {len(body)} bytes" in message
    assert "\n" not in message
    _assert_nothing_left(tmp_path, entry.filename)


def test_failed_forced_download_keeps_the_previous_file(server, tmp_path):
    entry = official_checkpoint("vits", "metric", "vkitti")
    previous = tmp_path / entry.filename
    previous.write_bytes(b"the file that was there before")
    body = standin_checkpoint_bytes("vits")
    server.routes[_path_of(entry)] = Route(body=body, send=1000)
    with pytest.raises(DownloadError, match="truncated transfer"):
        download_checkpoint(entry, tmp_path, base=server.base_url, force=True, progress=False)
    assert previous.read_bytes() == b"the file that was there before"
    assert sorted(p.name for p in tmp_path.iterdir()) == [entry.filename]


def test_truncated_transfer_via_cli_is_one_line_without_traceback(server, tmp_path):
    entry = official_checkpoint("vitb", "metric", "hypersim")
    body = standin_checkpoint_bytes("vitb")
    server.routes[_path_of(entry)] = Route(body=body, send=len(body) - 1)
    result = _run_cli(
        "download", "--encoder", "vitb", "--dataset", "hypersim", "--dir", str(tmp_path),
        "--base-url", server.base_url, "--no-progress",
    )
    _assert_one_line_error(result, "truncated transfer", f"of {len(body)} bytes")
    _assert_nothing_left(tmp_path, entry.filename)


@pytest.mark.parametrize("status, reason", [(404, "Not Found"), (500, "Internal Server Error"), (403, "Forbidden")])
def test_server_error_is_a_clear_message(server, tmp_path, status, reason):
    entry = official_checkpoint("vits", "relative")
    if status != 404:
        server.routes[_path_of(entry)] = Route(status=status)
    with pytest.raises(DownloadError) as info:
        download_checkpoint(entry, tmp_path, base=server.base_url, progress=False)
    assert str(info.value) == (
        f"download of {server.base_url}{_path_of(entry)} failed: HTTP {status} "
        f"{'Entry not found' if status == 404 else reason}"
    )
    _assert_nothing_left(tmp_path, entry.filename)


def test_wrong_checksum_is_refused(server, tmp_path):
    # The real catalog entry: its published sha256 belongs to the real 99 MB file, not to this one.
    entry = official_checkpoint("vits", "relative")
    body = standin_checkpoint_bytes("vits")
    server.routes[_path_of(entry)] = Route(body=body)
    result = _run_cli(
        "download", "--model-type", "relative", "--dir", str(tmp_path), "--base-url", server.base_url, "--no-progress"
    )
    _assert_one_line_error(
        result,
        "checksum mismatch for depth_anything_v2_vits.pth",
        f"expected sha256 {entry.sha256}",
        f"got {hashlib.sha256(body).hexdigest()}",
    )
    _assert_nothing_left(tmp_path, entry.filename)


def test_an_html_page_is_refused_before_downloading(server, tmp_path):
    entry = official_checkpoint("vits", "metric", "hypersim")
    server.routes[_path_of(entry)] = Route(
        body=b"<html><body>Too many requests, try later</body></html>", content_type="text/html; charset=utf-8"
    )
    with pytest.raises(DownloadError) as info:
        download_checkpoint(entry, tmp_path, base=server.base_url, progress=False)
    assert str(info.value) == (
        f"{server.base_url}{_path_of(entry)} answered with an HTML page, not a checkpoint file "
        f"(a login, rate-limit or error page of a proxy or mirror?)"
    )
    _assert_nothing_left(tmp_path, entry.filename)


def test_bytes_that_are_not_a_checkpoint_are_refused(server, tmp_path):
    entry = official_checkpoint("vits", "metric", "hypersim")
    server.routes[_path_of(entry)] = Route(body=b"\x00\x01 definitely not a torch file " * 100)
    with pytest.raises(DownloadError) as info:
        download_checkpoint(entry, tmp_path, base=server.base_url, progress=False)
    head = b"\x00\x01 definitel"  # the first 12 bytes
    assert str(info.value) == (
        f"the downloaded {entry.filename} is not a PyTorch or safetensors file (it starts with {head!r})"
    )
    _assert_nothing_left(tmp_path, entry.filename)


def test_a_torch_file_cut_short_is_refused_by_the_loader(server, tmp_path):
    entry = official_checkpoint("vits", "metric", "hypersim")
    body = standin_checkpoint_bytes("vits")
    server.routes[_path_of(entry)] = Route(body=body[: len(body) // 2])  # a consistent but incomplete file
    with pytest.raises(DownloadError) as info:
        download_checkpoint(entry, tmp_path, base=server.base_url, progress=False)
    message = str(info.value)
    assert message.startswith(f"the downloaded file does not load as a checkpoint: checkpoint {entry.filename} ")
    assert PARTIAL_PREFIX not in message and "\n" not in message
    _assert_nothing_left(tmp_path, entry.filename)


def test_another_encoders_weights_are_refused(server, tmp_path):
    entry = official_checkpoint("vits", "metric", "hypersim")
    server.routes[_path_of(entry)] = Route(body=standin_checkpoint_bytes("vitb"))
    with pytest.raises(DownloadError, match=r"downloaded depth_anything_v2_metric_hypersim_vits.pth holds vitb "
                                            r"weights \(embed dim 768\), expected vits$"):
        download_checkpoint(entry, tmp_path, base=server.base_url, progress=False)
    _assert_nothing_left(tmp_path, entry.filename)


def test_truncated_file_without_content_length_is_caught_by_the_load_check(server, tmp_path):
    entry = official_checkpoint("vits", "metric", "hypersim")
    body = standin_checkpoint_bytes("vits")
    server.routes[_path_of(entry)] = Route(body=body, send=len(body) // 2, declare_length=False)
    with pytest.raises(DownloadError, match="does not load as a checkpoint"):
        download_checkpoint(entry, tmp_path, base=server.base_url, progress=False)
    _assert_nothing_left(tmp_path, entry.filename)


def test_stalled_server_times_out(server, tmp_path):
    entry = official_checkpoint("vits", "metric", "hypersim")
    server.routes[_path_of(entry)] = Route(body=standin_checkpoint_bytes("vits"), stall_s=3.0)
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"connection lost after 0 of \d+ bytes .*timed out"):
        download_checkpoint(entry, tmp_path, base=server.base_url, progress=False, timeout=0.5)
    assert time.monotonic() - start < 2.5
    _assert_nothing_left(tmp_path, entry.filename)


def test_unreachable_host_is_a_clear_message(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    entry = official_checkpoint("vits", "metric", "hypersim")
    with pytest.raises(DownloadError,
                       match=rf"cannot reach 127\.0\.0\.1:{port} for http://127\.0\.0\.1:{port}/.*refused"):
        download_checkpoint(entry, tmp_path, base=f"http://127.0.0.1:{port}", progress=False)
    _assert_nothing_left(tmp_path, entry.filename)

"""`dav2_weights download` through huggingface_hub against a local server that speaks the hub's file API.

The server (http.server on 127.0.0.1, one per test) answers what `hf_hub_download` asks:
HEAD /{repo}/resolve/{revision}/{filename} with X-Repo-Commit, ETag / X-Linked-Etag (the file's
SHA-256, as the hub sends for LFS files) and X-Linked-Size; GET of the same path, with a Range
request answered 206; 404 with X-Error-Code: EntryNotFound for a file it does not hold. The files
are small stand-in checkpoints whose real SHA-256 replaces the catalog's published one.

How the hub's environment reaches huggingface_hub: it reads HF_ENDPOINT, HF_HUB_OFFLINE and the
cache folders once, at import. Tests in this process therefore pass the endpoint (download's
`base=`, i.e. the CLI's --base-url / $DAV2_WEIGHTS_BASE_URL) and the cache folder (`cache_dir=`, or
huggingface_hub.constants.HF_HUB_CACHE patched for `main`), and patch
huggingface_hub.constants.HF_HUB_OFFLINE; the subprocess tests set HF_ENDPOINT, HF_HUB_OFFLINE and
HF_HUB_CACHE in the environment of a fresh interpreter, as a user would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import huggingface_hub.constants
import pytest
import torch

from dav2_ros.cli.weights import main
from dav2_ros.weights.standin_weights import reference_tensor
from dav2_ros.weights import catalog
from dav2_ros.weights.cache import resolve_checkpoint
from dav2_ros.weights.catalog import official_checkpoint
from dav2_ros.weights.download import DownloadError, download_checkpoint
from project_paths import PROJECT_DIR

EMBED_DIM = {"vits": 384, "vitb": 768, "vitl": 1024}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


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
class HubServer:
    """A tiny hub on 127.0.0.1: `files` maps "repo/filename" to bytes; every request lands in `requests`.

    Attributes:
        files: the files it serves, under any revision.
        requests: (method, path, Range header or None) of each request, in order.
        drop_first_get_after: when set, the first GET of a file sends only this many bytes (of a declared
            full Content-Length) and closes the connection, like a dropped download.
        url: the endpoint, http://127.0.0.1:PORT.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str, Optional[str]]] = field(default_factory=list)
    drop_first_get_after: Optional[int] = None
    url: str = ""

    @property
    def file_requests(self) -> list[tuple[str, str, Optional[str]]]:
        """The requests of the file API (huggingface_hub also asks an endpoint for /api/... on its own)."""
        return [request for request in self.requests if "/resolve/" in request[1]]

    def serve(self, entry, body: bytes) -> None:
        """Hold `body` as `entry`'s file."""
        self.files[f"{entry.hf_repo}/{entry.filename}"] = body


def _make_handler(state: HubServer):
    """A request handler class bound to `state`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _file(self) -> Optional[bytes]:
            """The body for /{org}/{name}/resolve/{revision}/{filename}, or None after answering 404."""
            parts = self.path.split("?")[0].strip("/").split("/")
            body = None
            if len(parts) == 5 and parts[2] == "resolve":
                body = state.files.get(f"{parts[0]}/{parts[1]}/{parts[4]}")
            if body is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Error-Message", "Entry not found")
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", "0")
                self.end_headers()
            return body

        def _metadata_headers(self, body: bytes) -> None:
            sha = hashlib.sha256(body).hexdigest()
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha1(body).hexdigest()}"')
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("X-Linked-Size", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")

        def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
            state.requests.append(("HEAD", self.path, None))
            body = self._file()
            if body is None:
                return
            self.send_response(200)
            self._metadata_headers(body)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            byte_range = self.headers.get("Range")
            state.requests.append(("GET", self.path, byte_range))
            body = self._file()
            if body is None:
                return
            match = re.fullmatch(r"bytes=(\d+)-", byte_range or "")
            start = int(match.group(1)) if match else 0
            self.send_response(206 if match else 200)
            self._metadata_headers(body)
            if match:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            sent = body[start:]
            if state.drop_first_get_after is not None:
                sent, state.drop_first_get_after = sent[: state.drop_first_get_after], None
            try:
                self.wfile.write(sent)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture()
def server():
    """A HubServer on an ephemeral 127.0.0.1 port, shut down after the test."""
    state = HubServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _standin_entry(monkeypatch, body: bytes, *args: str):
    """The catalog entry for `args` with `body`'s SHA-256 as its published one (also seen by the CLI)."""
    entry = dataclasses.replace(official_checkpoint(*args), sha256=hashlib.sha256(body).hexdigest())
    monkeypatch.setitem(catalog._BY_FILENAME, entry.filename, entry)
    return entry


def _cache_files(cache: Path) -> list[str]:
    """Every file and link under a Hugging Face cache folder, relative, without its lock files."""
    if not cache.exists():
        return []
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*")
                  if (p.is_file() or p.is_symlink()) and ".locks" not in p.parts and p.name != "CACHEDIR.TAG")


def _run_cli(*args: str, env_extra: dict, home: Path) -> subprocess.CompletedProcess:
    """`python -m dav2_ros.cli.weights ARGS` in a fresh interpreter: no HF_* or DAV2_WEIGHTS_* but `env_extra`,
    HF_HOME under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "DAV2_WEIGHTS_"))}
    env["PYTHONPATH"] = str(PROJECT_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HOME"] = str(home / "hf_home")
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "dav2_ros.cli.weights", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def _assert_one_line_error(stderr: str, *needles: str) -> str:
    """Exactly one `dav2_weights: error:` line, no traceback, containing `needles`; returns the line."""
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("dav2_weights: error:")]
    assert len(errors) == 1, stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_fresh_download_lands_in_the_hf_cache_linked_from_the_weights_folder(server, tmp_path, monkeypatch, capsys):
    from dav2_ros.weights.checkpoint import load_state_dict

    body = standin_checkpoint_bytes("vits")
    entry = _standin_entry(monkeypatch, body, "vits", "metric", "hypersim")
    server.serve(entry, body)
    cache, folder = tmp_path / "hf" / "hub", tmp_path / "weights"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("DAV2_WEIGHTS_BASE_URL", server.url)  # mapped to hf_hub_download's endpoint

    assert main(["download", "--dir", str(folder), "--no-progress"]) == 0
    out = capsys.readouterr().out
    target = folder / entry.filename
    cached = cache / f"models--{entry.hf_repo.replace('/', '--')}" / "snapshots" / COMMIT / entry.filename
    assert target.is_symlink() and Path(os.readlink(target)) == cached
    assert target.read_bytes() == body
    assert f"saved {target} -> {cached}" in out and f"sha256 {entry.sha256}" in out
    path = f"/{entry.hf_repo}/resolve/{entry.revision}/{entry.filename}"
    assert server.file_requests == [("HEAD", path, None), ("GET", path, None)]

    # What the node does at start: the official name in the weights folder, no network, no huggingface_hub.
    assert resolve_checkpoint("", "vits", "metric", "hypersim", folder) == target
    loaded = load_state_dict(target)
    assert set(loaded) == set(torch.load(io.BytesIO(body), weights_only=True))

    assert main(["list", "--dir", str(folder)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if entry.filename in line)
    assert "official vits metric hypersim (indoor, max_depth 20 m) (in the Hugging Face cache)" in line

    # Present: a no-op that says so, with no request.
    assert main(["download", "--dir", str(folder)]) == 0
    assert "already present" in capsys.readouterr().out and len(server.file_requests) == 2


def test_dropped_connection_is_resumed_with_a_range_request(server, tmp_path, monkeypatch):
    """huggingface_hub 2.x retries within the call (its temporary file is unique to the process and removed on
    failure); 1.x keeps `blobs/<etag>.incomplete` and continues it on the next run. Either way: a Range request."""
    body = standin_checkpoint_bytes("vitb")
    entry = _standin_entry(monkeypatch, body, "vitb", "relative")
    server.serve(entry, body)
    server.drop_first_get_after = len(body) // 3
    # huggingface_hub writes what it has read in chunks of 10 MB; smaller ones so this 6 MB file has some on disk.
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 1 << 16)

    def download():
        return download_checkpoint(entry, tmp_path / "w", base=server.url, cache_dir=tmp_path / "hub", progress=False)

    try:  # huggingface_hub 2.x resumes within the call
        result = download()
    except DownloadError as err:  # 1.x gives up, keeps blobs/<etag>.incomplete and resumes it on the next run
        assert "peer closed connection" in str(err) and not (tmp_path / "w" / entry.filename).exists()
        assert [name for name in _cache_files(tmp_path / "hub") if name.endswith(".incomplete")]
        result = download()
    assert result.downloaded and result.sha256 == entry.sha256 and result.path.read_bytes() == body
    ranges = [byte_range for method, _, byte_range in server.file_requests if method == "GET"]
    assert len(ranges) == 2 and ranges[0] is None
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", ranges[1]).group(1))
    assert 0 < resumed_at <= len(body) // 3  # the second request asked for the rest only
    assert not [name for name in _cache_files(tmp_path / "hub") if name.endswith(".incomplete")]


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    # The real catalog entry: its published sha256 belongs to the real 99 MB file, not to this stand-in.
    entry = official_checkpoint("vits", "relative")
    body = standin_checkpoint_bytes("vits")
    server.serve(entry, body)
    cache, folder = tmp_path / "hub", tmp_path / "weights"
    result = _run_cli("download", "--model-type", "relative", "--encoder", "vits", "--dir", str(folder),
                      "--no-progress", env_extra={"HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(cache)}, home=tmp_path)
    assert result.returncode == 1
    _assert_one_line_error(
        result.stderr,
        f"checksum mismatch for {entry.filename}: expected sha256 {entry.sha256}",
        f"got {hashlib.sha256(body).hexdigest()}",
        "removed from the Hugging Face cache",
    )
    assert list(folder.iterdir()) == []
    assert [name for name in _cache_files(cache) if "/blobs/" in name or "/snapshots/" in name] == []
    # HF_ENDPOINT, read by huggingface_hub at import, took the request to this server at the pinned revision.
    assert server.file_requests[0] == ("HEAD", f"/{entry.hf_repo}/resolve/{entry.revision}/{entry.filename}", None)


def test_a_file_that_does_not_load_is_removed_from_the_cache(server, tmp_path, monkeypatch):
    body = standin_checkpoint_bytes("vitb")  # vitb weights under the vits name, with a matching sha256
    entry = _standin_entry(monkeypatch, body, "vits", "metric", "vkitti")
    server.serve(entry, body)
    with pytest.raises(DownloadError, match=rf"downloaded {entry.filename} holds vitb weights \(embed dim 768\), "
                                            r"expected vits$"):
        download_checkpoint(entry, tmp_path / "w", base=server.url, cache_dir=tmp_path / "hub", progress=False)
    assert list((tmp_path / "w").iterdir()) == []
    assert [name for name in _cache_files(tmp_path / "hub") if "/blobs/" in name or "/snapshots/" in name] == []


def test_offline_with_the_file_cached_needs_no_server(server, tmp_path, monkeypatch):
    body = standin_checkpoint_bytes("vits")
    entry = _standin_entry(monkeypatch, body, "vits", "metric", "hypersim")
    server.serve(entry, body)
    cache = tmp_path / "hub"
    download_checkpoint(entry, tmp_path / "first", base=server.url, cache_dir=cache, progress=False)
    server.requests.clear()

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    result = download_checkpoint(entry, tmp_path / "second", base=server.url, cache_dir=cache, progress=False)
    assert result.downloaded and result.path.read_bytes() == body and result.sha256 == entry.sha256
    assert server.requests == []


def test_offline_without_the_file_is_one_line_with_the_command(server, tmp_path):
    folder = tmp_path / "weights"
    result = _run_cli("download", "--encoder", "vitb", "--model-type", "metric", "--dataset", "vkitti",
                      "--dir", str(folder), env_extra={"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": server.url,
                                                       "HF_HUB_CACHE": str(tmp_path / "hub")}, home=tmp_path)
    assert result.returncode == 1
    _assert_one_line_error(
        result.stderr,
        "depth_anything_v2_metric_vkitti_vitb.pth is not in the Hugging Face cache and HF_HUB_OFFLINE is set",
        f"`dav2_weights download --encoder vitb --model-type metric --dataset vkitti --dir {folder}`",
    )
    assert server.requests == [] and list(folder.iterdir()) == []


def test_missing_file_is_one_line_naming_the_file_and_the_command(server, tmp_path):
    entry = official_checkpoint("vitl", "metric", "hypersim")
    folder = tmp_path / "weights"
    result = _run_cli("download", "--encoder", "vitl", "--dir", str(folder), "--base-url", server.url,
                      env_extra={"HF_HUB_CACHE": str(tmp_path / "hub")}, home=tmp_path)
    assert result.returncode == 1
    _assert_one_line_error(
        result.stderr,
        f"{entry.filename} not found at {entry.url_from(server.url)} (HTTP 404)",
        f"`dav2_weights download --encoder vitl --model-type metric --dataset hypersim --dir {folder}`",
    )
    assert list(folder.iterdir()) == []


def test_dav2_weights_base_url_is_the_endpoint_and_copy_gives_a_real_file(server, tmp_path, monkeypatch):
    body = standin_checkpoint_bytes("vits")
    entry = _standin_entry(monkeypatch, body, "vits", "metric", "vkitti")
    server.serve(entry, body)
    monkeypatch.setenv("DAV2_WEIGHTS_BASE_URL", server.url + "/")
    result = download_checkpoint(entry, tmp_path / "w", cache_dir=tmp_path / "hub", copy=True, progress=False)
    assert not result.path.is_symlink() and result.path.read_bytes() == body
    assert [p.name for p in (tmp_path / "w").iterdir()] == [entry.filename]  # no temporary name left
    assert server.file_requests[0][1] == f"/{entry.hf_repo}/resolve/{entry.revision}/{entry.filename}"


def test_a_cleared_hf_cache_leaves_a_link_that_list_and_the_node_name(server, tmp_path, monkeypatch, capsys):
    body = standin_checkpoint_bytes("vits")
    entry = _standin_entry(monkeypatch, body, "vits", "metric", "hypersim")
    server.serve(entry, body)
    folder = tmp_path / "w"
    result = download_checkpoint(entry, folder, base=server.url, cache_dir=tmp_path / "hub", progress=False)
    result.cached.resolve().unlink()  # what `hf cache delete` does to the blob
    assert main(["list", "--dir", str(folder)]) == 0
    assert any(entry.filename in line and "broken link" in line for line in capsys.readouterr().out.splitlines())
    with pytest.raises(FileNotFoundError, match=r"a link to .* which is gone .*dav2_weights download"):
        resolve_checkpoint("", "vits", "metric", "hypersim", folder)

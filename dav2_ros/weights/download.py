"""Download an official checkpoint into the weights folder, safely.

The file is streamed (stdlib urllib, tqdm progress bar) into a hidden temporary file in the
destination folder, checked (byte count against Content-Length, SHA-256 where the catalog knows
it, and that it loads as a checkpoint of the expected encoder), and only then renamed into place
with os.replace. On any failure the temporary file is removed and nothing new appears under the
final name; a previous file of that name is left untouched.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from dav2_ros.weights.catalog import DEFAULT_BASE_URL, OfficialCheckpoint

BASE_URL_ENV = "DAV2_WEIGHTS_BASE_URL"
PARTIAL_PREFIX = ".partial-"
_CHUNK = 1 << 20
_USER_AGENT = "dav2_ros-weights/0.1 (+urllib)"


class DownloadError(RuntimeError):
    """A download that did not produce a verified file; the message is one line that says why."""


@dataclass(frozen=True)
class DownloadResult:
    """What `download_checkpoint` did.

    Attributes:
        path: the checkpoint file in the weights folder.
        size: its size in bytes.
        sha256: its SHA-256 (computed while downloading, or None when the file was already there).
        checksum_verified: whether the SHA-256 was compared against a published value.
        downloaded: False when the file was already present and --force was not given.
    """

    path: Path
    size: int
    sha256: Optional[str]
    checksum_verified: bool
    downloaded: bool


def base_url(explicit: Optional[str] = None) -> str:
    """The host to fetch from: `explicit`, else `$DAV2_WEIGHTS_BASE_URL`, else huggingface.co."""
    for candidate in (explicit, os.environ.get(BASE_URL_ENV)):
        if candidate and candidate.strip():
            return candidate.strip()
    return DEFAULT_BASE_URL


def sha256_of(path: Path) -> str:
    """The SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _has_checkpoint_signature(head: bytes) -> bool:
    """Whether a file's first bytes look like torch.save output (zip or legacy pickle) or safetensors."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return True
    return len(head) >= 9 and head[8:9] == b"{"  # safetensors: u64 header length, then a JSON header


def verify_loads(path: Path, encoder: str, label: Optional[str] = None) -> None:
    """Check that `path` loads as an official-layout checkpoint of `encoder`.

    Args:
        path: the file to load (usually the temporary download).
        encoder: the encoder its shapes must say.
        label: how to name the file in messages (the final file name rather than the temporary one).

    Raises:
        DownloadError: it does not load, or it holds another encoder's weights.
    """
    # Imported here: weights/ depends on the model's loader, never the other way round.
    from dav2_ros.model.checkpoint import CheckpointError, detect_encoder, load_state_dict

    label = label or path.name
    with open(path, "rb") as handle:
        head = handle.read(16)
    if not _has_checkpoint_signature(head):
        raise DownloadError(
            f"the downloaded {label} is not a PyTorch or safetensors file (it starts with {head[:12]!r})"
        )
    try:
        state_dict = load_state_dict(path)
        found, embed_dim = detect_encoder(state_dict)
    except CheckpointError as err:
        detail = str(err).replace(str(path), label)
        raise DownloadError(f"the downloaded file does not load as a checkpoint: {detail}") from err
    except Exception as err:  # a loader bug must still end in a clear refusal, not a kept file
        raise DownloadError(
            f"the downloaded file does not load as a checkpoint: {err.__class__.__name__}: {err}"
        ) from err
    if found != encoder:
        raise DownloadError(
            f"the downloaded {label} holds {found or 'unknown'} weights (embed dim {embed_dim}), "
            f"expected {encoder}"
        )


def _describe_url_error(url: str, err: BaseException) -> str:
    """One line that says why a request for `url` failed."""
    if isinstance(err, urllib.error.HTTPError):
        return f"download of {url} failed: HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        host = urllib.parse.urlsplit(url).netloc
        return f"cannot reach {host} for {url}: {err.reason}"
    if isinstance(err, (socket.timeout, TimeoutError)):
        return f"download of {url} timed out"
    return f"download of {url} failed: {err}"


def _current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _content_length(response: http.client.HTTPResponse) -> Optional[int]:
    """The response's declared body size, or None when it declares none (or nonsense)."""
    value = response.headers.get("Content-Length")
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _stream_to(
    response: http.client.HTTPResponse, handle, url: str, total: Optional[int], label: str, progress: bool
) -> tuple[int, str]:
    """Copy the response body into `handle` with a progress bar; returns (bytes, sha256 hex)."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    received = 0
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1000,
        desc=label,
        disable=not progress,
        file=sys.stderr,
        leave=True,
    ) as bar:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError, OSError) as err:
                of_total = f" of {total}" if total is not None else ""
                raise DownloadError(
                    f"connection lost after {received}{of_total} bytes of {url}: {err.__class__.__name__}"
                    f"{': ' + str(err) if str(err) else ''}"
                ) from err
            if not chunk:
                break
            handle.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    return received, digest.hexdigest()


def download_file(
    url: str,
    destination: Path,
    *,
    expected_sha256: Optional[str] = None,
    verify: Optional[Callable[[Path], None]] = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> tuple[int, str]:
    """Fetch `url` into `destination` atomically; returns (size, sha256 hex).

    Args:
        url: what to fetch (http, https or file).
        destination: the final file path; its folder is created if needed.
        expected_sha256: the published checksum, or None to skip that check.
        verify: called on the complete temporary file before it is renamed; raises to refuse it.
        progress: show a tqdm progress bar on stderr.
        timeout: seconds a connection or a single read may stall.

    Raises:
        DownloadError: any failure; the temporary file is gone and `destination` is unchanged.
    """
    folder = destination.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"cannot create the weights folder {folder}: {err.strerror or err}") from err
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - URL comes from the catalog/user
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as err:
        raise DownloadError(_describe_url_error(url, err)) from err

    tmp_path: Optional[Path] = None
    try:
        with response:
            content_type = response.headers.get("Content-Type", "")
            if content_type.split(";")[0].strip().lower() == "text/html":
                raise DownloadError(
                    f"{url} answered with an HTML page, not a checkpoint file "
                    f"(a login, rate-limit or error page of a proxy or mirror?)"
                )
            total = _content_length(response)
            if total is not None:
                free = shutil.disk_usage(folder).free
                if free < total:
                    raise DownloadError(
                        f"not enough space in {folder}: the file is {total} bytes, {free} bytes are free"
                    )
            # Same folder (so os.replace is an atomic rename), hidden, and ending in the real file
            # name so loaders that look at the suffix see ".pth" / ".safetensors".
            fd, name = tempfile.mkstemp(dir=folder, prefix=PARTIAL_PREFIX, suffix="-" + destination.name)
            tmp_path = Path(name)
            with os.fdopen(fd, "wb") as handle:
                received, digest = _stream_to(response, handle, url, total, destination.name, progress)
                handle.flush()
                os.fsync(handle.fileno())
        if total is not None and received != total:
            raise DownloadError(
                f"truncated transfer: received {received} of {total} bytes from {url} "
                f"(the connection closed early); nothing was saved, try again"
            )
        if received == 0:
            raise DownloadError(f"the server sent an empty file for {url}")
        if expected_sha256 is not None and digest != expected_sha256.lower():
            raise DownloadError(
                f"checksum mismatch for {destination.name}: expected sha256 {expected_sha256}, "
                f"got {digest}; the file was refused (corrupt transfer or a different file on the server)"
            )
        if verify is not None:
            verify(tmp_path)
        # mkstemp makes the file owner-only; give it the permissions a normally created file would get.
        os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, destination)
        tmp_path = None
        return received, digest
    except OSError as err:
        raise DownloadError(f"writing {destination} failed: {err.strerror or err}") from err
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)


def download_checkpoint(
    entry: OfficialCheckpoint,
    folder: Path,
    *,
    base: Optional[str] = None,
    force: bool = False,
    progress: bool = True,
    check_loads: bool = True,
    timeout: float = 30.0,
) -> DownloadResult:
    """Download an official checkpoint into `folder` (see the module docstring for the guarantees).

    Args:
        entry: the catalog entry to fetch.
        folder: the weights folder.
        base: the host (Hugging Face layout); None for `$DAV2_WEIGHTS_BASE_URL` or huggingface.co.
        force: download again even if the file is already there.
        progress: show a progress bar on stderr.
        check_loads: load the file (model.checkpoint.load_state_dict) and check its encoder before keeping it.
        timeout: seconds a connection or read may stall.

    Raises:
        DownloadError: with a one-line message; nothing new is left under the final name.
    """
    destination = folder / entry.filename
    if destination.is_file() and not force:
        return DownloadResult(destination, destination.stat().st_size, None, False, downloaded=False)
    url = entry.url_from(base_url(base))
    verify = (lambda path: verify_loads(path, entry.encoder, entry.filename)) if check_loads else None
    size, digest = download_file(
        url, destination, expected_sha256=entry.sha256, verify=verify, progress=progress, timeout=timeout
    )
    return DownloadResult(destination, size, digest, entry.sha256 is not None, downloaded=True)

"""Download an official checkpoint with huggingface_hub, check it, and link it into the weights folder.

`huggingface_hub.hf_hub_download` does the transfer into the Hugging Face cache (`$HF_HUB_CACHE`,
else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`): the hub's file API (HEAD, then GET, resumed
with a Range request when the connection drops), a temporary file renamed into `blobs/`, and the
hub's environment (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE; huggingface_hub reads HF_ENDPOINT,
HF_HUB_OFFLINE and the cache folders once, when it is imported). This module then checks the cached
file -- its SHA-256 against the catalog's published value and that it loads as a checkpoint of the
expected encoder -- and removes it from the cache when it fails. Only a checked file gets the final
name in the weights folder: a link into the cache (or a copy), made under a temporary name and
renamed into place. huggingface_hub is imported only here and only when downloading: the node finds
the file through the weights folder (`cache.resolve_checkpoint`) and never downloads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from dav2_ros.weights.cache import download_commands
from dav2_ros.weights.catalog import OfficialCheckpoint

BASE_URL_ENV = "DAV2_WEIGHTS_BASE_URL"
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download that did not produce a verified file; the message is one line that says why."""


@dataclass(frozen=True)
class DownloadResult:
    """What `download_checkpoint` did.

    Attributes:
        path: the checkpoint's name in the weights folder.
        cached: the file in the Hugging Face cache that `path` links to (None when the file was already present).
        size: its size in bytes.
        sha256: its SHA-256, checked against the catalog (None when the file was already present).
        downloaded: False when the file was already present and force was not given.
    """

    path: Path
    cached: Optional[Path]
    size: int
    sha256: Optional[str]
    downloaded: bool


def _hub():
    """The huggingface_hub module, imported on first use (the node never needs it)."""
    try:
        import huggingface_hub
        import huggingface_hub.constants
        import huggingface_hub.errors
        import huggingface_hub.utils
    except ImportError as err:
        raise DownloadError(
            f"downloading needs the huggingface_hub package ({err}); install it with `pip install huggingface_hub`"
        ) from err
    return huggingface_hub


def endpoint(explicit: Optional[str] = None) -> str:
    """The hub to fetch from: `explicit`, else `$DAV2_WEIGHTS_BASE_URL`, else huggingface_hub's ($HF_ENDPOINT)."""
    for candidate in (explicit, os.environ.get(BASE_URL_ENV)):
        if candidate and candidate.strip():
            return candidate.strip().rstrip("/")
    return _hub().constants.ENDPOINT


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
        path: the file to load (the cached download).
        encoder: the encoder its shapes must say.
        label: how to name the file in messages (the official file name rather than the cache's blob name).

    Raises:
        DownloadError: it does not load, or it holds another encoder's weights.
    """
    # Imported here: weights/ depends on the model's loader, never the other way round.
    from dav2_ros.weights.checkpoint import CheckpointError, detect_encoder, load_state_dict

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
        detail = str(err).replace(str(path), label).replace(path.name, label)
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


def _first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (huggingface_hub's run over several)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else err.__class__.__name__


def _describe_hub_error(err: Exception, entry: OfficialCheckpoint, host: str, folder: Path) -> str:
    """One line that says why hf_hub_download failed and, where it helps, the command to run."""
    hub = _hub()
    errors = hub.errors
    url = entry.url_from(host)
    _, command = download_commands(entry, folder)
    if isinstance(err, errors.LocalEntryNotFoundError) and hub.constants.HF_HUB_OFFLINE:
        return (
            f"{entry.filename} is not in the Hugging Face cache and HF_HUB_OFFLINE is set, so it cannot be "
            f"downloaded; unset HF_HUB_OFFLINE and run `{command}` where {host} can be reached"
        )
    if isinstance(err, ValueError) and hub.constants.HF_HUB_OFFLINE:  # force_download while offline
        return f"--force downloads again, which HF_HUB_OFFLINE forbids; unset HF_HUB_OFFLINE to run `{command} --force`"
    cause = err.__cause__ if isinstance(err, errors.LocalEntryNotFoundError) and err.__cause__ else err
    response = getattr(cause, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(cause, errors.RevisionNotFoundError):
        return f"revision {entry.revision} of {entry.hf_repo} not found on {host} (HTTP {status}) for {entry.filename}"
    if isinstance(cause, errors.RemoteEntryNotFoundError) or status == 404:
        return (
            f"{entry.filename} not found at {url} (HTTP 404); check --base-url, {BASE_URL_ENV} and HF_ENDPOINT, "
            f"then run `{command}` again"
        )
    if isinstance(cause, errors.RepositoryNotFoundError) or status in (401, 403):
        return (
            f"{entry.hf_repo} is not accessible on {host} (HTTP {status}) for {entry.filename}; "
            f"a private mirror needs HF_TOKEN"
        )
    if status is not None:
        return f"download of {url} failed: HTTP {status}"
    if isinstance(cause, errors.FileMetadataError):  # no X-Repo-Commit / ETag: a proxy or login page, not a hub
        return f"{host} does not answer like a Hugging Face hub for {entry.filename}: {_first_line(cause)}"
    if isinstance(cause, errors.OfflineModeIsEnabled) or cause is not err:
        return f"cannot reach {host} for {entry.filename}: {_first_line(cause)}"
    return f"download of {url} failed: {_first_line(err)}"


def _discard(cached: Path) -> None:
    """Remove a refused file from the Hugging Face cache: its snapshot link and the blob it points to."""
    blob = cached.resolve()
    cached.unlink(missing_ok=True)
    if blob != cached:
        blob.unlink(missing_ok=True)


def _place(cached: Path, destination: Path, copy: bool) -> None:
    """Give `destination` the checked file: a link to `cached` (or a copy), made aside and renamed into place."""
    tmp = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        if not copy:
            try:
                os.symlink(cached, tmp)
            except OSError:  # no symbolic links on this file system: a copy instead
                copy = True
        if copy:
            shutil.copyfile(cached, tmp)
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)


def download_checkpoint(
    entry: OfficialCheckpoint,
    folder: Path,
    *,
    base: Optional[str] = None,
    cache_dir: Optional[Path] = None,
    force: bool = False,
    copy: bool = False,
    progress: bool = True,
    check_loads: bool = True,
    timeout: Optional[float] = None,
) -> DownloadResult:
    """Download an official checkpoint into the Hugging Face cache and link it into `folder` (see the module docstring).

    Args:
        entry: the catalog entry to fetch (its repository, file name, revision and SHA-256).
        folder: the weights folder.
        base: the hub endpoint; None for `$DAV2_WEIGHTS_BASE_URL`, else `$HF_ENDPOINT`, else huggingface.co.
        cache_dir: the Hugging Face cache; None for huggingface_hub's ($HF_HUB_CACHE / $HF_HOME).
        force: download again even if the file is already there.
        copy: put a copy in the weights folder instead of a link into the cache.
        progress: show huggingface_hub's progress bar on stderr.
        check_loads: load the file (weights.checkpoint.load_state_dict) and check its encoder before keeping it.
        timeout: seconds the metadata request may take; None for huggingface_hub's (HF_HUB_ETAG_TIMEOUT, 10 s).

    Raises:
        DownloadError: with a one-line message; nothing new is left under the final name, and a refused file
            is removed from the cache.
    """
    destination = folder / entry.filename
    if destination.is_file() and not force:
        return DownloadResult(destination, None, destination.stat().st_size, None, downloaded=False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"cannot create the weights folder {folder}: {err.strerror or err}") from err
    hub = _hub()
    host = endpoint(base)
    options = {"etag_timeout": timeout} if timeout is not None else {}
    silenced = not progress and not hub.utils.are_progress_bars_disabled()
    if silenced:
        hub.utils.disable_progress_bars()
    try:
        cached = Path(hub.hf_hub_download(
            entry.hf_repo, entry.filename, revision=entry.revision, endpoint=host,
            cache_dir=cache_dir, force_download=force, **options,
        ))
    except (hub.errors.HfHubHTTPError, hub.errors.LocalEntryNotFoundError, hub.errors.OfflineModeIsEnabled,
            ValueError) as err:
        raise DownloadError(_describe_hub_error(err, entry, host, folder)) from err
    except OSError as err:  # a short transfer, a full disk
        raise DownloadError(f"download of {entry.url_from(host)} failed: {_first_line(err)}") from err
    except Exception as err:  # the HTTP client's own errors (a connection dropped past huggingface_hub's retries)
        raise DownloadError(
            f"download of {entry.url_from(host)} failed: {err.__class__.__name__}: {_first_line(err)}"
        ) from err
    finally:
        if silenced:
            hub.utils.enable_progress_bars()
    try:
        digest = sha256_of(cached)
        if digest != entry.sha256:
            raise DownloadError(
                f"checksum mismatch for {entry.filename}: expected sha256 {entry.sha256}, got {digest}; "
                f"the file was refused and removed from the Hugging Face cache (a corrupt transfer, "
                f"or a different file on {host})"
            )
        if check_loads:
            verify_loads(cached, entry.encoder, entry.filename)
    except DownloadError:
        _discard(cached)
        raise
    try:
        _place(cached, destination, copy)
    except OSError as err:
        raise DownloadError(f"writing {destination} failed: {err.strerror or err}") from err
    return DownloadResult(destination, cached, cached.stat().st_size, digest, downloaded=True)

"""Many bags, one run: finding the bags, where each one's depth bag goes, when it is complete, and converting one
bag with a model loaded once (with retries for transient errors). No process pool and no Ray here: `fleet.py`
runs this in local worker processes, `fleet_ray.py` in Ray actors; both use the same rules.

Layout: the output of bag `ROOT/a/b/bag1` (a folder, or `bag1.mcap` / `bag1.db3`) is the rosbag2 folder
`OUT/a/b/bag1`, ROOT being the deepest folder that holds every bag found. It is written as
`OUT/a/b/.dav2_partial/bag1` and renamed to `OUT/a/b/bag1` when the bag is finished, after
`OUT/a/b/bag1.done.json` (the bag's summary, the input's size and the options' fingerprint) was written. A bag is
complete when both exist and the marker names the same input and options; anything else is converted again (an
unfinished bag left by an interrupted run is replaced).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import glob
import hashlib
import io
import json
import os
import pathlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from dav2_ros.offline import bag_to_depth
from dav2_ros.offline.bag_io import BagError
from dav2_ros.offline.bag_to_depth import bag_name
from dav2_ros.offline.output_bag import prepare_output
from dav2_ros.pipeline.builders import StartupError
from dav2_ros.pipeline.settings import NodeSettings, SettingsError

BAG_FILE_SUFFIXES = (".mcap", ".db3")
DONE_SUFFIX = ".done.json"
PARTIAL_DIR = ".dav2_partial"
MARKER_VERSION = 1
RETRY_DELAY_S = 1.0  # before retry k: k x this
# OSErrors that will not go away by trying again (the input is simply not there or not readable).
_PERMANENT_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
# Options that change how fast a bag converts, not what its output holds: left out of the fingerprint.
_SPEED_ONLY_PARAMS = frozenset({"num_threads"})
_OUTPUT_OPTIONS = ("storage", "image_topic", "info_topic", "sparse_topic", "output_ns", "copy_input", "colored")

Status = Literal["done", "skipped", "failed", "interrupted", "fatal"]


class BatchError(Exception):
    """A problem with the batch as a whole (an input that matches no bag, two bags with one output)."""


# ------------------------------------------------------------------------------------------- finding bags
def is_bag_folder(path: pathlib.Path) -> bool:
    """A rosbag2 folder: it holds metadata.yaml."""
    return (path / "metadata.yaml").is_file()


def is_bag_file(path: pathlib.Path) -> bool:
    """A single-file bag (.mcap / .db3) that is not part of a bag folder."""
    return path.is_file() and path.suffix in BAG_FILE_SUFFIXES and not is_bag_folder(path.parent)


def bags_below(folder: pathlib.Path, exclude: Iterable[pathlib.Path] = ()) -> list[pathlib.Path]:
    """Every bag at or below `folder` (sorted; a bag folder is not searched further; hidden folders -- among them
    the unfinished bags, in `.dav2_partial` -- and the folders in `exclude` are skipped)."""
    if is_bag_folder(folder):
        return [folder]
    skipped = {p.resolve() for p in exclude}
    found = []
    for root, dirs, files in os.walk(folder):
        here = pathlib.Path(root)
        keep = []
        for name in sorted(dirs):
            sub = here / name
            if name.startswith(".") or sub.resolve() in skipped:
                continue
            if is_bag_folder(sub):
                found.append(sub)
            else:
                keep.append(name)
        dirs[:] = keep
        found.extend(here / name for name in sorted(files) if pathlib.Path(name).suffix in BAG_FILE_SUFFIXES)
    return sorted(found)


def list_file_entries(list_file: pathlib.Path) -> list[str]:
    """The inputs of a list file: one a line, `#` comments and blank lines skipped; relative paths are relative
    to the list file's folder."""
    try:
        lines = list_file.read_text().splitlines()
    except OSError as error:
        raise BatchError(f"cannot read list file {list_file}: {error}") from None
    entries = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            entries.append(text if os.path.isabs(text) else str(list_file.parent / text))
    return entries


def find_bags(inputs: Sequence[str], list_files: Sequence[pathlib.Path] = (),
              exclude: Iterable[pathlib.Path] = ()) -> list[pathlib.Path]:
    """The bags of the inputs, each once, in the order given: a bag (folder, .mcap, .db3), a folder (every bag
    below it), a glob pattern (`**` allowed) or, through `list_files`, the entries of a list file.

    Raises:
        BatchError: an input that is none of these or matches no bag.
    """
    exclude = list(exclude)
    entries = list(inputs) + [entry for path in list_files for entry in list_file_entries(path)]
    found: dict[pathlib.Path, None] = {}
    for entry in entries:
        path = pathlib.Path(entry).expanduser()
        if path.exists():
            matches = [path]
        elif glob.has_magic(entry):
            matches = [pathlib.Path(p) for p in sorted(glob.glob(os.path.expanduser(entry), recursive=True))]
        else:
            raise BatchError(f"input {entry} does not exist")
        bags = []
        for match in matches:
            if match.is_dir():
                bags.extend(bags_below(match, exclude))
            elif is_bag_file(match):
                bags.append(match)
            elif match.name == "metadata.yaml" or is_bag_folder(match.parent):
                bags.append(match.parent)
            elif path.exists():
                raise BatchError(f"input {entry} is not a bag (a rosbag2 folder, .mcap or .db3 file) nor a folder")
        if not bags:
            raise BatchError(f"input {entry} matches no bag")
        for bag in bags:
            found.setdefault(bag.resolve(), None)
    return list(found)


# ------------------------------------------------------------------------------------------- output layout
@dataclasses.dataclass(frozen=True)
class BagJob:
    """One bag of the batch and where its depth bag goes."""

    index: int
    input: pathlib.Path
    output: pathlib.Path
    replace: bool = False  # an output exists and --overwrite asks to redo it

    @property
    def partial(self) -> pathlib.Path:
        """Where the bag is written until it is finished: a hidden folder beside the output (the same file system,
        so the final rename is atomic), under the output's own name (rosbags names the storage file after it)."""
        return self.output.parent / PARTIAL_DIR / self.output.name

    @property
    def marker(self) -> pathlib.Path:
        """The done-marker: the bag's summary, written just before the partial bag is renamed."""
        return self.output.with_name(self.output.name + DONE_SUFFIX)


def plan_outputs(bags: Sequence[pathlib.Path], output_dir: pathlib.Path) -> list[BagJob]:
    """Each bag's output folder under `output_dir`, mirroring the bags' paths below their deepest common folder.

    Raises:
        BatchError: two bags that would write the same output (e.g. `x/` and `x.mcap` side by side).
    """
    if not bags:
        return []
    root = pathlib.Path(os.path.commonpath([str(bag.parent) for bag in bags]))
    jobs, seen = [], {}
    for index, bag in enumerate(bags):
        output = output_dir / bag.parent.relative_to(root) / bag_name(bag)
        if output in seen:
            raise BatchError(f"bags {seen[output]} and {bag} would both be written to {output}; convert them in "
                             "separate runs")
        seen[output] = bag
        jobs.append(BagJob(index, bag, output))
    return jobs


def input_size(bag: pathlib.Path) -> int:
    """Bytes of a bag (folder or file)."""
    if bag.is_dir():
        return sum(p.stat().st_size for p in bag.rglob("*") if p.is_file())
    return bag.stat().st_size


def largest_first(jobs: Iterable[BagJob]) -> list[BagJob]:
    """The jobs in the order a pool should start them: largest input first (an unreadable one counts 0 bytes:
    its worker reports why)."""
    def size(job: BagJob) -> int:
        try:
            return input_size(job.input)
        except OSError:
            return 0

    return sorted(jobs, key=lambda job: -size(job))


def fingerprint(args: argparse.Namespace, settings: NodeSettings | None = None) -> dict[str, Any]:
    """What decides the bytes of an output bag: the resolved model settings (params file, --param and the named
    options, without the thread count) and the output options. The marker keeps it; a change redoes the bag.
    `settings`: `bag_to_depth.tool_settings(args)` when the caller has it already (else read here)."""
    params = (settings if settings is not None else bag_to_depth.tool_settings(args)).as_params()
    model = {name: value for name, value in sorted(params.items()) if name not in _SPEED_ONLY_PARAMS}
    options = {name: getattr(args, name) for name in _OUTPUT_OPTIONS}
    digest = hashlib.sha256(json.dumps([model, options], sort_keys=True, default=str).encode()).hexdigest()
    return {"sha256": digest, "settings": model, "options": options}


def read_marker(job: BagJob) -> dict[str, Any] | None:
    """The job's done-marker, or None when it is missing or unreadable."""
    try:
        marker = json.loads(job.marker.read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def classify(job: BagJob, options_sha256: str, overwrite: bool) -> tuple[str, str]:
    """("skip", why), ("convert", why) or ("conflict", reason) for a job before its run.

    Complete = the output folder with its metadata.yaml, and a marker naming the same input (and size) and the
    same options. An output without a marker was not made by dav2_bags (or by an older run interrupted between
    marker and rename: never, the marker is written first); like bag_to_depth, it is replaced with --overwrite
    only.
    """
    marker = read_marker(job)
    finished = (job.output / "metadata.yaml").is_file()
    if overwrite:
        return "convert", "--overwrite"
    if marker is not None and finished:
        if marker.get("options_sha256") != options_sha256:
            return "conflict", (f"output {job.output} was made with other options; pass --overwrite to redo it "
                                "with these")
        if marker.get("input") != str(job.input) or marker.get("input_bytes") != input_size(job.input):
            return "conflict", f"output {job.output} was made from another input; pass --overwrite to redo it"
        return "skip", "complete"
    if job.output.exists() or job.output.is_symlink():
        if marker is None:
            return "conflict", (f"output {job.output} exists but has no {job.marker.name} (not a finished dav2_bags "
                                "output); pass --overwrite to replace it")
        return "convert", "incomplete"
    return "convert", "new" if not job.partial.exists() else "resumed (an unfinished bag of an interrupted run)"


# ------------------------------------------------------------------------------------------- one bag
@dataclasses.dataclass
class BagResult:
    """What became of one bag."""

    index: int
    input: str
    output: str
    status: Status
    reason: str = ""
    frames: int = 0
    seconds: float = 0.0  # conversion, retries included, model load not
    model_load_s: float = 0.0  # > 0 for the first bag of each worker
    attempts: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    worker: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return dataclasses.asdict(self)


class ModelCache:
    """The model of one worker: loaded on its first bag, kept for the rest."""

    def __init__(self) -> None:
        self.model: bag_to_depth.LoadedModel | None = None

    def get(self, args: argparse.Namespace) -> tuple[bag_to_depth.LoadedModel, float]:
        """The model for `args` and the seconds it took to load now (0 when it was loaded before)."""
        if self.model is not None:
            return self.model, 0.0
        started = time.perf_counter()
        self.model = bag_to_depth.load_model(bag_to_depth.tool_settings(args))
        return self.model, time.perf_counter() - started


def worker_args(args: argparse.Namespace, threads: int | None, device: str | None) -> argparse.Namespace:
    """The options as one worker runs them: its thread count and device (a GPU of its own) on top."""
    mine = copy.copy(args)
    mine.param = [*args.param, *([f"num_threads={threads}"] if threads else [])]
    if device is not None:
        mine.device = device
    return mine


def is_transient(error: BaseException) -> bool:
    """An error worth another try: an OSError (network file system, full disk being cleaned, a busy device),
    directly or as the cause of a BagError; not a missing or unreadable input, not a corrupt bag."""
    cause = error if isinstance(error, OSError) else error.__cause__
    return isinstance(cause, OSError) and not isinstance(cause, _PERMANENT_OS_ERRORS)


def convert_one(job: BagJob, args: argparse.Namespace, cache: ModelCache, options: dict[str, Any], retries: int,
                progress: Callable[[int], Any] | None = None,
                stop_requested: Callable[[], bool] = lambda: False, worker: str = "") -> BagResult:
    """Convert one bag as `bag_to_depth INPUT -o OUTPUT` would, into its unfinished folder, then mark it done and
    rename it. Never raises for a bad bag: the result says what happened and why.

    Args:
        job: the bag and its output.
        args: bag_to_depth's options (the worker's, see `worker_args`).
        cache: the worker's model, loaded on first use.
        options: `fingerprint(args)` as the driver computed it (kept in the marker).
        retries: further attempts after a transient error (`is_transient`).
        progress, stop_requested: as `bag_to_depth.run`'s.
    """
    result = BagResult(job.index, str(job.input), str(job.output), "failed", worker=worker)
    if stop_requested():
        result.status, result.reason = "interrupted", "not started"
        return result
    started = time.perf_counter()
    for attempt in range(1, retries + 2):
        result.attempts = attempt
        try:
            _convert_attempt(job, args, cache, options, result, progress, stop_requested)
        except (StartupError, SettingsError) as error:  # the model or the options: no bag will do better
            result.status, result.reason = "fatal", str(error)
        except Exception as error:  # noqa: BLE001  (one bad bag must not end the batch: every cause is reported)
            result.status, result.reason = "failed", _describe(error)
            if is_transient(error) and attempt <= retries and not stop_requested():
                time.sleep(RETRY_DELAY_S * attempt)
                continue
        break
    if result.status == "failed":
        _discard_partial(job)
    result.seconds = time.perf_counter() - started - result.model_load_s
    return result


def _discard_partial(job: BagJob) -> None:
    """Remove what a failed bag left unfinished (its reason is in the run's summary), and the staging folder once
    empty. An interrupted bag keeps its unfinished output (valid, with the frames done) until the next run."""
    with contextlib.suppress(OSError, BagError):
        if job.partial.exists():
            prepare_output(job.partial, job.input, overwrite=True)  # a bag folder only
        job.partial.with_name(job.partial.name + ".json").unlink(missing_ok=True)
        job.partial.parent.rmdir()


def _convert_attempt(job: BagJob, args: argparse.Namespace, cache: ModelCache, options: dict[str, Any],
                     result: BagResult, progress: Callable[[int], Any] | None,
                     stop_requested: Callable[[], bool]) -> None:
    """One try at a bag; sets `result` (status, frames, notes) or raises."""
    if job.replace or job.marker.exists():
        job.marker.unlink(missing_ok=True)  # first: a marker beside an old output must never look complete
    if job.replace and (job.output.exists() or job.output.is_symlink()):
        prepare_output(job.output, job.input, overwrite=True)  # deletes a bag folder only, like bag_to_depth
    job.partial.parent.mkdir(parents=True, exist_ok=True)
    summary_path = job.partial.with_name(job.partial.name + ".json")
    one = copy.copy(args)
    one.input, one.output, one.overwrite, one.summary_json, one.no_progress = (
        job.input, job.partial, True, summary_path, True)
    model, load_s = cache.get(one)
    result.model_load_s += load_s
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = bag_to_depth.run(one, model, progress=progress, stop_requested=stop_requested)
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    result.frames = int(summary.get("frames_read", 0))
    result.notes = _notes(summary)
    if code == bag_to_depth.EXIT_INTERRUPTED:
        result.status, result.reason = "interrupted", f"stopped after {result.frames} frames; redone on the next run"
        return
    if code != 0:
        errors = [line.split("error: ", 1)[1] for line in err.getvalue().splitlines() if ": error: " in line]
        result.status, result.reason = "failed", errors[-1] if errors else f"bag_to_depth exit code {code}"
        return
    marker = {"version": MARKER_VERSION, "tool": "dav2_bags", "input": str(job.input),
              "input_bytes": input_size(job.input), "output": str(job.output), "options_sha256": options["sha256"],
              "options": options["options"], "settings": options["settings"], "summary": summary,
              "summary_text": out.getvalue()}
    _write_atomically(job.marker, json.dumps(marker, indent=2, default=str) + "\n")
    if job.output.exists():  # made by a concurrent writer since the run was planned: ours is as good
        prepare_output(job.output, job.input, overwrite=True)
    os.replace(job.partial, job.output)
    summary_path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # empty once no other bag of this folder is being written
        job.partial.parent.rmdir()
    result.status, result.reason = "done", ""


def _notes(summary: dict[str, Any]) -> list[str]:
    """What a finished bag's summary says that a user should know (frames not processed, clouds not made)."""
    notes = [f"no point cloud for {count} frame(s): {reason}"
             for reason, count in sorted(summary.get("clouds_skipped", {}).items())]
    notes += [f"{count} frame(s) not processed: {reason}"
              for reason, count in sorted(summary.get("failures", {}).items())]
    return notes


def _write_atomically(path: pathlib.Path, text: str) -> None:
    """Write a file under a temporary name, flush it to disk and rename it into place."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)


def _describe(error: BaseException) -> str:
    """One line for an error: BagError messages as they are, anything else with its type."""
    if isinstance(error, BagError):
        return str(error)
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
